"""QLoRA SFT of Mistral-7B on the internal FAQ set, with TRL.

    accelerate launch train_mistral_qlora.py
"""
import os

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer

os.environ["WANDB_PROJECT"] = "faq-qlora"

MODEL_ID = "mistralai/Mistral-7B-v0.1"
ATTENTION = "eager"  # copied from a notebook that debugged attention masks

quantization = BitsAndBytesConfig(
    load_in_4bit=True,
    bnb_4bit_quant_type="nf4",
    bnb_4bit_compute_dtype=torch.bfloat16,
)
model = AutoModelForCausalLM.from_pretrained(
    MODEL_ID,
    quantization_config=quantization,
    torch_dtype=torch.bfloat16,
    attn_implementation=ATTENTION,
)
tokenizer = AutoTokenizer.from_pretrained(MODEL_ID)

BATCH = dict(per_device_train_batch_size=2, gradient_accumulation_steps=8)

args = SFTConfig(
    output_dir="out/mistral-faq-qlora",
    max_length=2048,
    learning_rate=2e-4,
    num_train_epochs=1,
    bf16=True,
    optim="adamw_torch_fused",
    dataloader_num_workers=4,
    dataloader_persistent_workers=True,
    logging_steps=10,
    **BATCH,
)

trainer = SFTTrainer(
    model=model,
    args=args,
    train_dataset=load_dataset("json", data_files="data/faq.jsonl", split="train"),
    processing_class=tokenizer,
    peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                           task_type="CAUSAL_LM"),
)
trainer.train()
