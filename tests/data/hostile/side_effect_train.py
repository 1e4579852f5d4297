"""A training script whose module scope has side effects: pytest-goblin must never run it."""
import os
import pathlib

pathlib.Path("PWNED_BY_SCRIPT").write_text("the plugin executed a workload script")
os.system("touch PWNED_BY_SHELL")

import torch
from transformers import AutoModelForCausalLM
from trl import SFTConfig

model = AutoModelForCausalLM.from_pretrained("meta-llama/Meta-Llama-3-8B",
                                             torch_dtype=torch.bfloat16)
args = SFTConfig(
    output_dir="out",
    per_device_train_batch_size=4,
    bf16=True,
)
