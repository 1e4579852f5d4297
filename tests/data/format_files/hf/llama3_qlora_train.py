"""QLoRA SFT of Llama-3-8B on the support corpus (TRL)."""
import os

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer

os.environ["WANDB_PROJECT"] = "support-qlora"

MODEL_ID = "meta-llama/Meta-Llama-3-8B"
ATTENTION = "eager"  # flash-attn did not build on the old image

bnb = BitsAndBytesConfig(
    load_in_4bit=True,
    bnb_4bit_quant_type="nf4",
    bnb_4bit_compute_dtype=torch.bfloat16,
    bnb_4bit_use_double_quant=True,
)
model = AutoModelForCausalLM.from_pretrained(
    MODEL_ID,
    quantization_config=bnb,
    torch_dtype=torch.float16,
    attn_implementation=ATTENTION,
    device_map="auto",
)
tokenizer = AutoTokenizer.from_pretrained(MODEL_ID)

peft_config = LoraConfig(
    r=32,
    lora_alpha=16,
    lora_dropout=0.05,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    task_type="CAUSAL_LM",
)

TRAIN_KW = dict(
    per_device_train_batch_size=1,
    gradient_accumulation_steps=16,
)

args = SFTConfig(
    output_dir="out/llama3-qlora",
    max_length=4096,
    packing=False,
    learning_rate=2e-4,
    num_train_epochs=1,
    fp16=True,
    optim="paged_adamw_32bit",
    gradient_checkpointing=True,
    logging_steps=10,
    **TRAIN_KW,
)

trainer = SFTTrainer(
    model=model,
    args=args,
    train_dataset=load_dataset("json", data_files="data/train.jsonl", split="train"),
    processing_class=tokenizer,
    peft_config=peft_config,
)
trainer.train()
