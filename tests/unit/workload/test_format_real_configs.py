"""Real configs from the ecosystem, kept as published in tests/data/format_files/real.

Each file names its source repository, path and licence on its first line. Each
is read to the fields its framework really trains with, or refused with an
error that names the key and says what to do; each patch applies to the file
as published and keeps its comments.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.format_support import FILES, apply_diff, change, copy_in
from pytest_goblin import formats
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import ALL_LINEAR
from pytest_goblin.workload.read import Workload, load_workload, plan_patch
from pytest_goblin.workload.sidecar import sidecar_path

REAL = FILES / "real"
REAL_FILES = sorted(str(path.relative_to(FILES)) for path in REAL.rglob("*.*"))
SOURCE_LINE = re.compile(r"^# Source: \S+/\S+ \S+.* \((Apache-2\.0|BSD-3-Clause|MIT)\b")
TOOLS = {"git": ["git", "apply"], "patch": ["patch", "-p1", "--quiet"]}
CANDIDATES = [
    ("precision", "bf16"),
    ("attention_impl", "flash"),
    ("optimizer", "adamw_torch_fused"),
    ("gradient_checkpointing", False),
    ("torch_compile", True),
    ("dataloader_workers", 4),
    ("packing", True),
    ("batch_size", 3),
    ("seq_len", 1536),
]
GRPO = "keys of TRL's GRPO trainer (GRPOConfig"
SEQ_LEN = "seq_len: 2048\n"
"""What the torchtune error asks for: the recipes ship ``max_seq_len: null`` or no key."""
TORCHTUNE_FIX = (
    "set tokenizer.max_seq_len, or give `seq_len:` in the sidecar real/torchtune/{}.goblin.yaml"
)


@dataclass(frozen=True)
class Case:
    """A real config that reads, what it reads as, and what it needs beside it, if anything."""

    relpath: str
    expected: dict[str, Any]
    sidecar: str | None = None
    """A sidecar's text: what the file cannot say (a model that is not a preset, the
    sequence length of a recipe that does not truncate)."""


TRL_CHUNKED = {"chunked_nll": 256}
"""What a TRL SFT file without ``loss_type`` and without ``use_liger_kernel`` runs: TRL's
chunked loss over 256 valid tokens at a time, SFTConfig's default since v1.7.0 (TRL v1.9.0
``trl/trainer/sft_config.py``, ``sft_trainer.py`` ``_CHUNKED_LM_HEAD_CHUNK_SIZE``)."""

READS = [
    Case(
        "real/axolotl/llama-3_fft-8b-liger-fsdp.yaml",
        {
            "format": "axolotl",
            "arch": "llama-3.1-8b",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "finetune": "full",
            "packing": True,
            "strategy": "fsdp",
        },
    ),
    Case(
        "real/axolotl/phi_phi3-ft.yml",
        {
            "format": "axolotl",
            "arch": "phi-3-mini",
            "batch_size": 12,
            "grad_accum_steps": 2,
            "seq_len": 4000,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_torch",
            "gradient_checkpointing": True,
            "finetune": "full",
            "packing": True,
            "strategy": "fsdp",
        },
    ),
    Case(
        "real/llamafactory/train_full_llama3_full_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "batch_size": 1,
            "grad_accum_steps": 2,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "finetune": "full",
            "packing": False,
            "strategy": "deepspeed",
        },
    ),
    Case(
        "real/llamafactory/train_lora_llama3_lora_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "batch_size": 1,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "gradient_checkpointing": True,
            "finetune": "lora",
            "lora_rank": 8,
            "lora_alpha": 16,
            "lora_targets": ALL_LINEAR,
            "packing": False,
        },
    ),
    Case(
        "real/llamafactory/train_qlora_llama3_lora_sft_otfq.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "finetune": "qlora",
            "lora_rank": 8,
            "lora_alpha": 16,
            "lora_targets": ALL_LINEAR,
            "precision": "bf16",
        },
    ),
    Case(
        "real/trl/alignment-handbook_zephyr-7b-beta_sft_config_qlora.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "mistral-7b",
            "batch_size": 4,
            "grad_accum_steps": 2,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "finetune": "qlora",
            "lora_rank": 16,
            "lora_alpha": 16,
            "lora_targets": ALL_LINEAR,
            "packing": False,
        },
    ),
    Case(
        "real/torchtune/llama3_2_1B_lora_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3.2-1b",
            "batch_size": 4,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": False,
            "finetune": "lora",
            "lora_rank": 64,
            "lora_alpha": 128,
            "lora_targets": ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            "packing": False,
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/torchtune/mistral_7B_qlora_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "mistral-7b",
            "batch_size": 4,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "precision": "bf16",
            "optimizer": "adamw_torch",
            "gradient_checkpointing": True,
            "finetune": "qlora",
            "lora_rank": 64,
            "lora_alpha": 16,
            "lora_targets": ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/llamafactory/extras_galore_llama3_full_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "finetune": "full",
            "optimizer": "galore_adamw",
            "precision": "bf16",
            "seq_len": 2048,
            "gradient_checkpointing": True,
            "dataloader_workers": 4,
        },
    ),
    Case(
        "real/llamafactory/extras_apollo_llama3_full_sft.yaml",
        {"format": "llamafactory", "finetune": "full", "optimizer": "apollo_adamw"},
    ),
    Case(
        "real/llamafactory/extras_muon_qwen2_full_sft.yaml",
        {"format": "llamafactory", "arch": "qwen2-1.5b", "finetune": "full", "optimizer": "muon"},
    ),
    Case(
        "real/llamafactory/extras_fp8_llama3_fp8_fsdp_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "precision": "fp8",
            "seq_len": 1024,
            "grad_accum_steps": 8,
            "strategy": "fsdp",
        },
    ),
    Case(
        "real/torchtune/v0.2.1_phi3_mini_full.yaml",
        {
            "format": "torchtune",
            "arch": "phi-3-mini",
            "seq_len": 4096,
            "batch_size": 2,
            "grad_accum_steps": 16,
            "precision": "bf16",
            "finetune": "full",
            "strategy": "fsdp",
            "world_size": 4,
            "zero_stage": 3,
        },
    ),
    Case(
        "real/trl/trl_cli_configs_example_config.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "qwen2.5-0.5b",
            "seq_len": 1024,
            "precision": "bf16",
            "gradient_checkpointing": True,
            "optimizer": "adamw_torch_fused",
            "lr": 1e-4,
            "finetune": "full",
        },
    ),
    Case(
        "real/axolotl/llama-3_3b-fp8-fsdp2.yaml",
        {
            "format": "axolotl",
            "arch": "llama-3.2-3b",
            "finetune": "full",
            "batch_size": 16,
            "grad_accum_steps": 1,
            "seq_len": 512,
            "precision": "fp8",
            "attention_impl": "flash",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": False,
            "packing": True,
            "strategy": "fsdp",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
        },
    ),
    Case(
        "real/axolotl/llama-3_fft-8b.yaml",
        {
            "format": "axolotl",
            "arch": "llama-3.1-8b",
            "finetune": "full",
            "batch_size": 1,
            "grad_accum_steps": 8,
            "seq_len": 8192,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "paged_adamw_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
        },
    ),
    Case(
        "real/axolotl/llama-3_lora-1b-kernels.yml",
        {
            "format": "axolotl",
            "arch": "llama-3.2-1b",
            "finetune": "lora",
            "batch_size": 2,
            "grad_accum_steps": 2,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
            "lora_rank": 16,
            "lora_alpha": 32,
        },
    ),
    Case(
        "real/axolotl/llama-3_lora-1b.yml",
        {
            "format": "axolotl",
            "arch": "llama-3.2-1b",
            "finetune": "lora",
            "batch_size": 2,
            "grad_accum_steps": 2,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
            "lora_rank": 16,
            "lora_alpha": 32,
        },
    ),
    Case(
        "real/axolotl/llama-3_qlora-1b.yml",
        {
            "format": "axolotl",
            "arch": "llama-3.2-1b",
            "finetune": "qlora",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-3_lora-1b-deduplicate-dpo.yml",
        {
            "format": "axolotl",
            "arch": "llama-3.2-1b",
            "finetune": "lora8",
            "objective": "dpo",
            "reference": "adapter",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": False,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-3_lora-8b.yml",
        {
            "format": "axolotl",
            "arch": "llama-3-8b",
            "finetune": "lora8",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-3_instruct-dpo-lora-8b.yml",
        {
            "format": "axolotl",
            "arch": "llama-3-8b",
            "finetune": "lora8",
            "objective": "dpo",
            "reference": "adapter",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": False,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-2_lora.yml",
        {
            "format": "axolotl",
            "arch": "llama-2-7b",
            "finetune": "lora8",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-3_instruct-lora-8b.yml",
        {
            "format": "axolotl",
            "arch": "llama-3-8b",
            "finetune": "lora8",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": False,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/mistral_lora.yml",
        {
            "format": "axolotl",
            "arch": "mistral-7b",
            "finetune": "lora8",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 8192,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/llama-3_qlora.yml",
        {
            "format": "axolotl",
            "arch": "llama-3-8b",
            "finetune": "qlora",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "paged_adamw_32bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/axolotl/mistral_config.yml",
        {
            "format": "axolotl",
            "arch": "mistral-7b",
            "finetune": "full",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 8192,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
        },
    ),
    Case(
        "real/axolotl/mistral_qlora.yml",
        {
            "format": "axolotl",
            "arch": "mistral-7b",
            "finetune": "qlora",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 8192,
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": True,
            "strategy": "single",
            "dataloader_workers": 1,
            "dataloader_prefetch_factor": 256,
            "lora_rank": 32,
            "lora_alpha": 16,
        },
    ),
    Case(
        # no bf16/fp16: the base loads in the checkpoint's bf16 and only LoRA's weights are
        # upcast (LLaMA-Factory ff6d4d1 model/patcher.py infer_optim_dtype, model/adapter.py)
        "real/llamafactory/train_lora_qwen3_preprocess.yaml",
        {
            "format": "llamafactory",
            "arch": "qwen3-4b",
            "finetune": "lora",
            "precision": "bf16",
            "pure_precision": False,
            "batch_size": 8,
            "grad_accum_steps": 1,
            "seq_len": 2048,
            "gradient_checkpointing": True,
        },
    ),
    Case(
        "real/llamafactory/extras_fsdp_qlora_llama3_lora_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "finetune": "qlora",
            "batch_size": 1,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "dataloader_workers": 4,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/llamafactory/extras_loraplus_llama3_lora_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "finetune": "lora",
            "batch_size": 1,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "dataloader_workers": 4,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/llamafactory/extras_pissa_llama3_lora_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "llama-3-8b",
            "finetune": "lora",
            "batch_size": 1,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "dataloader_workers": 4,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/trl/alignment-handbook_constitutional-ai_sft_config_anthropic.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "mistral-7b",
            "finetune": "full",
            "batch_size": 8,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "gradient_checkpointing": True,
            "packing": False,
        },
    ),
    Case(
        "real/trl/alignment-handbook_zephyr-7b-beta_sft_config_full.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "mistral-7b",
            "finetune": "full",
            "batch_size": 16,
            "grad_accum_steps": 1,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "flash",
            "gradient_checkpointing": True,
            "packing": False,
        },
    ),
    Case(
        "real/torchtune/llama3_1_8B_lora_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3.1-8b",
            "finetune": "lora",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "torch_compile": False,
            "dataloader_workers": 0,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/torchtune/qwen2_5_0.5B_full_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "qwen2.5-0.5b",
            "finetune": "full",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": False,
            "torch_compile": False,
            "dataloader_workers": 0,
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/torchtune/llama3_8B_qlora_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3-8b",
            "finetune": "qlora",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch_fused",
            "gradient_checkpointing": True,
            "torch_compile": False,
            "dataloader_workers": 0,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/hf/trl_sft_trl_lora_qlora_notebook.py",
        {
            "format": "hf-script",
            "extras": {"use_liger_kernel": True},
            "arch": "qwen3-14b",
            "model_name": "unsloth/qwen3-14b-unsloth-bnb-4bit",
            "batch_size": 1,
            "grad_accum_steps": 4,
            "seq_len": 1024,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "optimizer": "paged_adamw_8bit",
            "gradient_checkpointing": True,
            "finetune": "qlora",
            "lora_rank": 32,
            "lora_alpha": 32,
            "lora_targets": ALL_LINEAR,
            "packing": False,
            # SFTConfig(activation_offloading=True): TRL's offloader over the training step
            "activation_offloading": True,
            "activation_offloader": "trl",
        },
    ),
]
READS += [
    # open-r1 SFT recipes whose models are presets: Mistral-Small-24B-Instruct-2501, and the
    # Qwen2.5 fine-tunes Qwen2.5-Coder-32B and Qwen2.5-Math-7B with their base's dims
    Case(
        "real/open_r1/Mistral-Small-24B-Instruct-2501_sft_config_openr1_math.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "mistral-small-24b",
            "finetune": "full",
            "batch_size": 1,
            "grad_accum_steps": 4,
            "seq_len": 32768,
            "precision": "bf16",
            "pure_precision": True,
            "attention_impl": "flash",
            "gradient_checkpointing": True,
            "packing": True,
            "lr": 2e-5,
            # its comment: "sbatch -N 4 ... slurm/train.slurm ... zero3", 8 GPUs a node
            "strategy": "deepspeed",
            "world_size": 32,
            "zero_stage": 3,
        },
    ),
    Case(
        "real/open_r1/OlympicCoder-32B_sft_config_v00.00.yaml",
        {
            "format": "trl",
            "arch": "qwen2.5-32b",
            "batch_size": 1,
            "grad_accum_steps": 1,
            "seq_len": 22528,
            "attention_impl": "flash",
            "optimizer": "paged_adamw_8bit",
            "packing": False,
            "extras": TRL_CHUNKED,
            # its first comment: "Config for 16 nodes of 8 H100s with FSDP1"
            "strategy": "fsdp",
            "world_size": 128,
            "zero_stage": 3,
        },
    ),
    Case(
        "real/open_r1/OpenR1-Qwen-7B_sft_config.yaml",
        {
            "format": "trl",
            "arch": "qwen2.5-7b",
            "batch_size": 1,
            "grad_accum_steps": 2,
            "seq_len": 32768,
            "attention_impl": "sdpa",
            "optimizer": "adamw_torch",
            "packing": True,
            "lr": 5e-5,
            "extras": {"use_liger_kernel": True},
        },
    ),
    Case(
        "real/open_r1/OlympicCoder-7B_sft_config_v00.00.yaml",
        {
            "format": "trl",
            "extras": {"use_liger_kernel": True},
            "arch": "qwen2.5-7b",
            "finetune": "full",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 32768,
            "precision": "bf16",
            "pure_precision": True,
            "attention_impl": "flash",
            "gradient_checkpointing": True,
            "packing": False,
            "lr": 1e-5,
            # its first comment: "Config for 1 node of 8 H100s with DeepSpeed ZeRO-3"
            "world_size": 8,
            "strategy": "deepspeed",
            "zero_stage": 3,
        },
    ),
    Case(
        "real/open_r1/Qwen2.5-1.5B-Instruct_sft_config_demo.yaml",
        {
            "format": "trl",
            "arch": "qwen2.5-1.5b",
            "finetune": "full",
            "batch_size": 16,
            "grad_accum_steps": 1,
            "seq_len": 16384,
            "precision": "bf16",
            "pure_precision": True,
            "attention_impl": "flash",
            "gradient_checkpointing": True,
            "packing": True,
            "lr": 5e-5,
            "extras": {"use_liger_kernel": True},
        },
    ),
]
READS += [
    Case(
        "real/torchtune/llama3_1_8B_lora_dpo_single_device.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3.1-8b",
            "objective": "dpo",
            "reference": "adapter",
            "finetune": "lora",
            "batch_size": 4,
            "grad_accum_steps": 8,
            "seq_len": 1024,
            "precision": "bf16",
            "pure_precision": True,
            "gradient_checkpointing": True,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
    ),
    Case(
        "real/torchtune/llama3_1_8B_full_dpo.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3.1-8b",
            "objective": "dpo",
            "reference": "model",
            "finetune": "full",
            "batch_size": 4,
            "grad_accum_steps": 8,
            "seq_len": 1024,
            "precision": "bf16",
            "lr": 2e-5,
            "strategy": "fsdp",
            "world_size": 4,
            "zero_stage": 3,
        },
    ),
]
READS += [
    Case(
        "real/axolotl/mistral_dpo_mistral-dpo-qlora.yml",
        {
            "format": "axolotl",
            "arch": "mistral-7b",
            "objective": "dpo",
            "reference": "adapter",
            "finetune": "qlora",
            "batch_size": 16,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "precision": "bf16",
            "pure_precision": False,
            "optimizer": "adamw_bnb_8bit",
            "gradient_checkpointing": True,
            "packing": False,
            "lora_rank": 8,
        },
    ),
    Case(
        "real/axolotl/qwen2_dpo.yaml",
        {
            "format": "axolotl",
            "arch": "qwen2.5-0.5b",
            "objective": "dpo",
            "reference": "model",
            "finetune": "full",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "precision": "bf16",
            "pure_precision": True,
            "attention_impl": "flash",
            "packing": False,
        },
    ),
]
READS += [
    # models that are presets: each file's own model id names its architecture
    Case(
        "real/axolotl/gemma2_qlora.yml",
        {
            "format": "axolotl",
            "arch": "gemma-2-9b",
            "finetune": "qlora",
            "batch_size": 1,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "optimizer": "adamw_bnb_8bit",
            "lora_rank": 32,
        },
    ),
    Case(
        "real/axolotl/llama-2_qlora.yml",
        {
            "format": "axolotl",
            "arch": "llama-2-7b",
            "finetune": "qlora",
            "batch_size": 2,
            "grad_accum_steps": 4,
            "seq_len": 4096,
            "optimizer": "paged_adamw_32bit",
        },
    ),
    Case(
        "real/axolotl/qwen2_qlora-fsdp.yaml",
        {
            "format": "axolotl",
            "arch": "qwen2-7b",
            "finetune": "qlora",
            "batch_size": 1,
            "grad_accum_steps": 4,
            "seq_len": 2048,
            "strategy": "fsdp",
        },
    ),
    Case(
        "real/llamafactory/extras_adam_mini_qwen2_full_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "qwen2-1.5b",
            "finetune": "full",
            "optimizer": "adam_mini",
            "grad_accum_steps": 8,
            "seq_len": 2048,
        },
    ),
    Case(
        "real/llamafactory/train_full_qwen3_full_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "qwen3-4b",
            "finetune": "full",
            "grad_accum_steps": 2,
            "seq_len": 2048,
            "strategy": "deepspeed",
            "zero_stage": 3,
        },
    ),
    Case(
        "real/llamafactory/train_lora_qwen3_lora_dpo.yaml",
        {"format": "llamafactory", "arch": "qwen3-4b", "finetune": "lora", "objective": "dpo"},
    ),
    Case(
        "real/llamafactory/train_lora_qwen3_lora_pretrain.yaml",
        {"format": "llamafactory", "arch": "qwen3-4b", "finetune": "lora", "objective": "sft"},
    ),
    Case(
        "real/llamafactory/train_lora_qwen3_lora_sft.yaml",
        {
            "format": "llamafactory",
            "arch": "qwen3-4b",
            "finetune": "lora",
            "lora_rank": 8,
            "grad_accum_steps": 8,
            "seq_len": 2048,
        },
    ),
    Case(
        "real/llamafactory/train_lora_qwen3_lora_sft_ds3.yaml",
        {
            "format": "llamafactory",
            "arch": "qwen3-4b",
            "finetune": "lora",
            "strategy": "deepspeed",
            "zero_stage": 3,
        },
    ),
    Case(
        "real/open_r1/SmolLM2-1.7B-Instruct_sft_config.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "smollm2-1.7b",
            "finetune": "full",
            "seq_len": 8192,
        },
    ),
    Case(
        "real/open_r1/SmolLM2-1.7B_sft_config.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "smollm2-1.7b",
            "finetune": "full",
            "seq_len": 8192,
        },
    ),
    Case(
        "real/trl/alignment-handbook_smollm2_sft_config.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "smollm2-1.7b",
            "finetune": "full",
            "grad_accum_steps": 4,
        },
    ),
    Case(
        "real/trl/alignment-handbook_zephyr-7b-gemma_sft_config_full.yaml",
        {
            "format": "trl",
            "extras": TRL_CHUNKED,
            "arch": "gemma-7b",
            "finetune": "full",
            "batch_size": 4,
            "grad_accum_steps": 4,
            "seq_len": 2048,
        },
    ),
    # torchtune's distributed recipes shard with FSDP over the processes their header's
    # `tune run --nproc_per_node N` starts (torchtune bd2a0fc7 recipes/*_distributed.py)
    Case(
        "real/torchtune/llama3_1_8B_lora.yaml",
        {
            "format": "torchtune",
            "arch": "llama-3.1-8b",
            "finetune": "lora",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "precision": "bf16",
            "optimizer": "adamw_torch_fused",
            "strategy": "fsdp",
            "world_size": 2,
            "zero_stage": 3,
        },
        sidecar=SEQ_LEN,
    ),
    Case(
        "real/torchtune/qwen3_8B_full.yaml",
        {
            "format": "torchtune",
            "arch": "qwen3-8b",
            "finetune": "full",
            "batch_size": 2,
            "grad_accum_steps": 8,
            "seq_len": 2048,
            "gradient_checkpointing": True,
            "strategy": "fsdp",
            "world_size": 4,
            "zero_stage": 3,
        },
        sidecar=SEQ_LEN,
    ),
]
READS += [
    # LLaMA-Factory's v1 trainer (USE_V1=1), main at ff6d4d1: src/llamafactory/v1/
    Case(
        "real/llamafactory/v1_train_lora_train_lora_sft.yaml",
        {
            "format": "llamafactory-v1",
            "arch": "qwen3-4b",
            "finetune": "lora",
            "lora_rank": 16,
            "lora_alpha": 32,
            "lora_targets": ALL_LINEAR,
            "batch_size": 1,
            "grad_accum_steps": 1,
            "seq_len": 2048,
            "precision": "bf16",
            "gradient_checkpointing": True,
            "strategy": "fsdp",
            "zero_stage": 3,
            "objective": "sft",
        },
    ),
    Case(
        "real/llamafactory/v1_train_full_train_full_deepspeed.yaml",
        {
            "format": "llamafactory-v1",
            "arch": "qwen3-0.6b",
            "finetune": "full",
            "precision": "bf16",
            "strategy": "deepspeed",
            "zero_stage": 3,
            "offload_params": False,
            "lr": 1e-4,
        },
    ),
    Case(
        "real/llamafactory/v1_train_qlora_quantization.yaml",
        {
            "format": "llamafactory-v1",
            "arch": "qwen3-0.6b",
            "finetune": "qlora",
            "precision": "fp16",
            "lora_rank": 16,
            "strategy": "fsdp",
        },
    ),
]
READS += [
    # ROCm blogs' notebooks (ROCm/rocm-blogs c9a603f): TrainingArguments handed to SFTTrainer
    # with no length train at TRL's 1024 cap; the LoRA one pins transformers==4.31.0, whose
    # default optimizer is adamw_hf and whose Llama attention is eager (no SDPA before v4.36.0)
    Case(
        "real/rocm_blogs/llama-lora_LLAMA_Fine_Tuning_with_LoRA.py",
        {
            "format": "hf-script",
            "arch": "llama-2-7b",
            "model_name": "NousResearch/Llama-2-7b-chat-hf",
            "batch_size": 4,
            "grad_accum_steps": 1,
            "seq_len": 1024,
            "precision": "fp32",
            "attention_impl": "eager",
            "optimizer": "adamw_hf",
            "gradient_checkpointing": False,
            "finetune": "lora",
            "lora_rank": 8,
            "lora_alpha": 8,
            "lora_targets": ["q_proj", "v_proj"],
            "packing": False,
            "extras": {"group_by_length": True},
        },
    ),
    Case(
        "real/rocm_blogs/llama-Qlora_LLAMA_Fine_Tuning_with_QLoRA.py",
        {
            "format": "hf-script",
            "extras": {"group_by_length": True, **TRL_CHUNKED},
            "arch": "llama-2-7b",
            "batch_size": 4,
            "seq_len": 1024,
            "precision": "fp16",
            "attention_impl": "sdpa",
            "optimizer": "paged_adamw_8bit",
            "gradient_checkpointing": False,
            "finetune": "qlora",
            "lora_rank": 8,
            "lora_alpha": 8,
        },
    ),
    # PEFT's EVA example: its own DataCollator(max_length=512) truncates, given in the sidecar
    Case(
        "real/hf/peft_eva_finetuning.py",
        {
            "format": "hf-script",
            "arch": "llama-3.1-8b",
            "batch_size": 4,
            "grad_accum_steps": 8,
            "seq_len": 512,
            "precision": "bf16",
            "finetune": "lora",
            "lora_rank": 16,
            "lora_alpha": 1,
            "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
        sidecar="seq_len: 512\n",
    ),
]
ERRORS = {
    "real/llamafactory/v1_train_freeze_train_freeze_sft.yaml": (
        "peft_config.name",
        "peft_config.name 'freeze' is not one pytest-goblin can model",
    ),
    "real/llamafactory/extras_badam_llama3_full_sft.yaml": (
        "use_badam",
        "use_badam: True trains one block of layers at a time",
    ),
    "real/llamafactory/extras_asft_llama2_full_asft.yaml": (
        "use_asft_loss",
        "loads a frozen copy of the model and runs it forward on every batch",
    ),
    "real/llamafactory/extras_mod_llama3_full_sft.yaml": (
        "mixture_of_depths",
        "mixture_of_depths: convert converts the model to mixture-of-depths",
    ),
    "real/llamafactory/merge_lora_qwen3_lora_sft.yaml": (
        "do_train",
        "export config (export_dir, no do_train: true)",
    ),
    "real/llamafactory/inference_qwen3.yaml": ("do_train", "(infer_backend, no do_train: true)"),
    "real/llamafactory/extras_nlg_eval_llama3_lora_predict.yaml": (
        "do_train",
        "(do_predict, no do_train: true): LLaMA-Factory trains only with do_train: true",
    ),
    "real/axolotl/qwen2_reward-model.yaml": ("reward_model", "TRL's RewardTrainer"),
    "real/axolotl/qwen2_prm.yaml": ("process_reward_model", "TRL's PRMTrainer"),
    "real/axolotl/llama-2_lisa.yml": ("lisa_n_layers", "LISA trains 4 randomly chosen layers"),
    "real/axolotl/distributed-parallel_qwen3-8b-fsdp-tp-cp.yaml": (
        "tensor_parallel_size",
        "tensor_parallel_size: 2 is tensor parallelism; pytest-goblin models data parallelism only",
    ),
    "real/axolotl/alst_llama3-8b-deepspeed-alst.yaml": (
        "context_parallel_size",
        "context_parallel_size: 8 is context parallelism; pytest-goblin models data parallelism only",
    ),
    "real/axolotl/falcon-e_falcon-e-3b-dpo.yaml": (
        "base_model",
        "'axolotl-ai-co/Falcon-E-1.2-3B-Exp-prequantized' (from `base_model`) is not a preset",
    ),
    "real/open_r1/DeepSeek-R1-Distill-Qwen-1.5B_grpo_config_demo.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-1.5B-Instruct_grpo_config_demo.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-1.5B-Instruct_grpo_config_demo_code.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-1.5B-Instruct_grpo_config_demo_code_ioi.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-Coder-7B-Instruct_grpo_config_codeforces.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-Math-7B_grpo_config_simple_rl.yaml": ("num_generations", GRPO),
    "real/open_r1/Qwen2.5-7B-Instruct_grpo_config_demo.yaml": (
        None,
        "duplicate key 'do_eval' (first at line 16); give each key once",
    ),
    "real/open_r1/OpenR1-Distill-7B_sft_config_distill.yaml": (
        "model_name_or_path",
        "'open-r1/Qwen2.5-Math-7B-RoPE-300k' (from `model_name_or_path`) is not a preset",
    ),
    "real/hf/peft_dora_finetuning.py": (
        "TrainingArguments(per_device_train_batch_size=) via batch_size, line 106",
        "`batch_size` is a parameter of train_model() (no default, line 18); pytest-goblin "
        "reads scripts without running them, so write the value the run uses as a literal",
    ),
    "real/hf/peft_finetune_fp4_opt_bnb_peft.py": (
        "the script's sequence length",
        "so the sequence length is unknown; set the script's sequence length, or give "
        "`seq_len:` in the sidecar real/hf/peft_finetune_fp4_opt_bnb_peft.goblin.yaml",
    ),
    "real/open_instruct/train_configs_sft_default.yaml": (
        "add_bos",
        "an open-instruct config (keys add_bos, checkpointing_steps",
    ),
    "real/axolotl/llama-3_qlora-1b-kto.yaml": ("rl", "rl: kto is preference"),
    "real/axolotl/mistral_orpo_mistral-qlora-orpo.yml": ("rl", "rl: orpo is preference"),
    "real/llamafactory/extras_llama_pro_llama3_freeze_sft.yaml": (
        "finetuning_type",
        "finetuning_type 'freeze' is not one pytest-goblin can model",
    ),
    "real/llamafactory/train_lora_qwen3_lora_kto.yaml": (
        "stage",
        "stage 'kto' is preference training",
    ),
    "real/llamafactory/train_lora_qwen3_lora_reward.yaml": (
        "stage",
        "stage 'rm' is reward-model training",
    ),
    "real/llamafactory/train_qlora_llama3_lora_sft_awq.yaml": (
        "model_name_or_path",
        "is a pre-quantized AWQ checkpoint",
    ),
    "real/llamafactory/train_qlora_llama3_lora_sft_gptq.yaml": (
        "model_name_or_path",
        "is a pre-quantized GPTQ checkpoint",
    ),
    "real/open_instruct/train_configs_dpo_default.yaml": (
        "checkpointing_steps",
        "an open-instruct config (keys checkpointing_steps",
    ),
    "real/open_instruct/train_configs_olmo2_olmo2_1124_7b_sft.yaml": (
        "add_bos",
        "an open-instruct config (keys add_bos",
    ),
    "real/trl/alignment-handbook_starchat2-15b_sft_config_v0.1.yaml": (
        "model_name_or_path",
        "'bigcode/starcoder2-15b' (from `model_name_or_path`) is a GPT-style decoder with a "
        "non-gated GELU MLP",
    ),
    "real/trl/alignment-handbook_zephyr-141b-A35b_orpo_config_full.yaml": (
        "beta",
        "keys TRL's DPO, ORPO, CPO and KTO configs share",
    ),
    "real/trl/alignment-handbook_zephyr-7b-beta_dpo_config_full.yaml": (
        "beta",
        "keys TRL's DPO, ORPO, CPO and KTO configs share",
    ),
    "real/torchtune/gemma2_2B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("gemma2_2B_lora_single_device"),
    ),
    "real/torchtune/llama3_1_8B_full_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_1_8B_full_single_device"),
    ),
    "real/torchtune/llama3_1_8B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_1_8B_lora_single_device"),
    ),
    "real/torchtune/llama3_1_8B_qlora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_1_8B_qlora_single_device"),
    ),
    "real/torchtune/llama3_2_3B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_2_3B_lora_single_device"),
    ),
    "real/torchtune/llama3_8B_qlora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_8B_qlora_single_device"),
    ),
    "real/torchtune/mistral_7B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("mistral_7B_lora_single_device"),
    ),
    "real/torchtune/phi3_mini_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("phi3_mini_lora_single_device"),
    ),
    "real/torchtune/qwen2_5_0.5B_full_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("qwen2_5_0.5B_full_single_device"),
    ),
    "real/torchtune/qwen2_5_7B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("qwen2_5_7B_lora_single_device"),
    ),
    "real/torchtune/llama3_2_1B_lora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_2_1B_lora_single_device"),
    ),
    "real/torchtune/mistral_7B_qlora_single_device.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("mistral_7B_qlora_single_device"),
    ),
    "real/torchtune/llama3_1_8B_lora.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("llama3_1_8B_lora"),
    ),
    "real/torchtune/qwen3_8B_full.yaml": (
        "tokenizer.max_seq_len",
        TORCHTUNE_FIX.format("qwen3_8B_full"),
    ),
    "real/torchtune/llama3_3_70B_full_multinode.yaml": (
        "tensor_parallel_dim",
        "tensor_parallel_dim: 8 is tensor parallelism; pytest-goblin models data parallelism "
        "only (DDP, FSDP, DeepSpeed ZeRO), so this run is not modelled: set "
        "tensor_parallel_dim: 1 to audit it as a data-parallel run, or deselect this item",
    ),
    "real/torchtune/llama3_2_8B_to_1B_KD_lora_single_device.yaml": (
        "teacher_model._component_",
        "teacher_model torchtune.models.llama3_1.llama3_1_8b: knowledge distillation",
    ),
    "real/torchtune/llama3_8B_dora.yaml": ("model.use_dora", "model.use_dora: True: DoRA"),
    "real/hf/trl_grpo_2048.py": (
        "GRPOConfig() line 144",
        "GRPOConfig() builds the arguments of TRL's GRPO, online RL",
    ),
    "real/torchtune/llama4_scout_17B_16E_lora.yaml": (
        "model._component_",
        "torchtune.models.llama4.lora_llama4_scout_17b_16e builds a Llama 4 mixture-of-experts "
        "model with early-fused vision (EarlyFusionModel); pytest-goblin models Llama-style "
        "decoders (RMSNorm, rotary attention, a gated MLP), so this architecture is not "
        "supported",
    ),
}
ERRORS |= {
    "real/rocm_blogs/starcoder-fine-tune_finetune.py": (
        "TrainingArguments(per_device_train_batch_size=) line 299",
        "`args.batch_size` is the command line's --batch_size (argparse default 1, line 88)",
    ),
    "real/hf/peft_lora_ga_finetuning.py": (
        "TrainingArguments(per_device_train_batch_size=) line 226",
        "`args.batch_size` is the command line's --batch_size (argparse default 8, line 82)",
    ),
    "real/hf/peft_olora_finetuning.py": (
        "TrainingArguments(per_device_train_batch_size=) via batch_size, line 123",
        "`batch_size` is a parameter of train() (default 16, line 31)",
    ),
    "real/hf/peft_sft_train.py": (
        "HfArgumentParser() line 149",
        "HfArgumentParser((ModelArguments, DataTrainingArguments, SFTConfig)) fills SFTConfig "
        "from the command line or an arguments file, which pytest-goblin does not see; audit "
        "the JSON or YAML file the run passes",
    ),
}


def prepare(tmp_path: Path, case: Case) -> Workload:
    """The case's file under ``tmp_path`` as the test needs it, read as the plugin reads it."""
    path = copy_in(tmp_path, case.relpath)
    if case.sidecar is not None:
        sidecar_path(path).write_text(case.sidecar, encoding="utf-8")
    return load_workload(path, display=case.relpath)


def reading(workload: Workload) -> dict[str, Any]:
    config = workload.config.model_dump()
    config.update(format=workload.source.format, arch=workload.config.arch.name)
    return config


def test_every_real_config_names_its_source_and_licence_on_its_first_line() -> None:
    for relpath in REAL_FILES:
        first = (FILES / relpath).read_text(encoding="utf-8").splitlines()[0]
        assert SOURCE_LINE.match(first), (relpath, first)


def test_every_real_config_has_an_expected_reading_or_error() -> None:
    assert set(REAL_FILES) == {case.relpath for case in READS} | set(ERRORS)


@pytest.mark.parametrize("case", READS, ids=lambda case: case.relpath)
def test_a_real_config_reads_as_its_framework_trains(tmp_path: Path, case: Case) -> None:
    found = reading(prepare(tmp_path, case))
    assert {key: found[key] for key in case.expected} == case.expected


@pytest.mark.parametrize("relpath", sorted(ERRORS))
def test_a_real_config_that_cannot_be_read_names_the_key_and_what_to_do(
    tmp_path: Path, relpath: str
) -> None:
    field, message = ERRORS[relpath]
    with pytest.raises(WorkloadError) as info:
        load_workload(copy_in(tmp_path, relpath), display=relpath)
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(relpath)


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("case", READS, ids=lambda case: case.relpath)
def test_the_patch_of_a_real_config_applies_and_reads_back_as_patched(
    tmp_path: Path, case: Case, tool: str
) -> None:
    if shutil.which(TOOLS[tool][0]) is None:
        pytest.skip(f"{TOOLS[tool][0]} is not installed")
    workload = prepare(tmp_path, case)
    changes = [c for c in (change(workload, f, new) for f, new in CANDIDATES) if c.old != c.new]
    planned = plan_patch(workload, changes)
    assert planned.changes, "a real config takes some of the candidate changes"
    if tool == "git":
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = apply_diff(TOOLS[tool], planned.diff, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    patched = tmp_path / case.relpath
    assert patched.read_text(encoding="utf-8") == planned.text
    expected = workload.config.model_dump() | {c.field: c.new for c in planned.changes}
    assert load_workload(patched, display=case.relpath).config.model_dump() == expected


@pytest.mark.parametrize("case", READS, ids=lambda case: case.relpath)
def test_every_comment_of_a_real_config_survives_its_patch(tmp_path: Path, case: Case) -> None:
    workload = prepare(tmp_path, case)
    changes = [c for c in (change(workload, f, new) for f, new in CANDIDATES) if c.old != c.new]
    edited = plan_patch(workload, changes).text
    comments = [
        line[line.index("#") :]
        for line in workload.source.text.splitlines()
        if line.lstrip().startswith("#") or "  #" in line
    ]
    assert all(comment in edited for comment in comments)


def test_keywords_added_to_a_commented_sftconfig_go_below_the_last_comment(
    tmp_path: Path,
) -> None:
    notebook = "real/hf/trl_sft_trl_lora_qlora_notebook.py"
    workload = prepare(tmp_path, next(case for case in READS if case.relpath == notebook))
    planned = plan_patch(
        workload,
        [change(workload, "torch_compile", True), change(workload, "dataloader_workers", 4)],
    )
    lines = planned.text.splitlines()
    at = lines.index("    torch_compile=True,")
    assert lines[at - 1].startswith("    push_to_hub=True,  ")
    assert lines[at - 1].endswith("# Automatically push the trained model to the Hugging Face Hub")
    assert lines[at + 1] == "    dataloader_num_workers=4,"


@pytest.mark.parametrize("case", READS, ids=lambda case: case.relpath)
def test_every_key_a_real_configs_patch_writes_is_one_its_framework_accepts(
    tmp_path: Path, case: Case
) -> None:
    workload = prepare(tmp_path, case)
    fmt = formats.BY_NAME[workload.source.format]
    if fmt.vocabulary is None:
        pytest.skip(f"{fmt.name} edits fixed component paths, not free keys")
    candidates = [
        ("optimizer", "adamw_torch_fused"),
        ("gradient_checkpointing", not workload.config.gradient_checkpointing),
        ("dataloader_workers", 4),
        ("dataloader_persistent_workers", True),
        ("torch_compile", True),
        ("precision", "bf16"),
        ("attention_impl", "flash"),
        ("packing", True),
    ]
    changes = [c for c in (change(workload, f, new) for f, new in candidates) if c.old != c.new]
    planned = plan_patch(workload, changes)
    before = yaml.safe_load(workload.source.text)
    after = yaml.safe_load(planned.text)
    added = set(after) - set(before)
    assert not [key for key in added if key not in fmt.vocabulary.keys]
