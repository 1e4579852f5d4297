"""Workload texts and stand-in devices shared by many tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

LLAMA_LORA: dict[str, Any] = {
    "model": "llama-3-8b",
    "finetune": "lora",
    "lora_rank": 16,
    "precision": "bf16",
    "attention_impl": "flash",
    "optimizer": "adamw_torch_fused",
    "dataloader_workers": 4,
    "batch_size": 4,
    "seq_len": 2048,
}
"""The analytic model's reference workload: Llama-3-8B LoRA r16, well tuned."""

SHARDED_LLAMA: dict[str, Any] = {
    "model": "llama-3-8b",
    "world_size": 8,
    "strategy": "fsdp",
    "precision": "bf16",
    "batch_size": 1,
    "seq_len": 2048,
    "gradient_checkpointing": True,
}
"""A full fine-tune of Llama-3-8B over eight ranks: the communication tests' workload."""


def sharded_llama(**fields: Any) -> WorkloadConfig:
    """``SHARDED_LLAMA`` with ``fields`` changed."""
    return WorkloadConfig.model_validate({**SHARDED_LLAMA, **fields})


PURE_BF16_LLAMA: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "finetune": "full",
    "precision": "bf16",
    "pure_precision": True,
    "batch_size": 2,
    "seq_len": 2048,
    "gradient_checkpointing": True,
    "optimizer": "adamw_torch_fused",
}
"""A full fine-tune of Llama-3.1-8B in pure bf16 on one device: the memory savers' workload."""


def pure_bf16_llama(**fields: Any) -> WorkloadConfig:
    """``PURE_BF16_LLAMA`` with ``fields`` changed."""
    return WorkloadConfig.model_validate({**PURE_BF16_LLAMA, **fields})


MISTUNED_YAML = """\
# Llama-3-8B LoRA copied from an fp32 tutorial.
name: llama-mistuned
model: llama-3-8b
finetune: lora
lora_rank: 16
batch_size: 2
seq_len: 2048
precision: fp32   # copied from a tutorial
attention_impl: eager
optimizer: adamw_torch
dataloader_workers: 0
"""

QWEN_LORA_CHECKPOINTED_YAML = """\
name: qwen-lora-checkpointed
model: qwen2.5-7b
finetune: lora
lora_rank: 16
batch_size: 4
grad_accum_steps: 4
seq_len: 4096
precision: fp16
attention_impl: sdpa
gradient_checkpointing: true
optimizer: adamw_torch_fused
dataloader_workers: 4
"""
"""A recipe for an 80 GB card (micro-batch 4 x 4096, fp16, checkpointing on): on a 192 GB
MI300X checkpointing off fits (~93 GB) and projects ~1.4x; on a 64 GB MI250X it fits only
at a smaller micro-batch."""

TUNED_YAML = """\
name: llama-tuned
model: llama-3-8b
finetune: lora
lora_rank: 16
batch_size: 4
seq_len: 2048
precision: bf16
attention_impl: flash
optimizer: adamw_torch_fused
dataloader_workers: 4
dataloader_pin_memory: true
dataloader_persistent_workers: true
"""

WorkloadFactory = Callable[..., Workload]


class MeasuredDevice:
    """A runner whose numbers count as measured: the simulated device's, relabelled."""

    def __init__(self, name: str = "mi300x") -> None:
        self._simulated = SimulatedDevice(name)
        self.info = DeviceInfo(
            kind="rocm",
            name=self._simulated.info.name,
            platform=self._simulated.info.platform,
            memory_gb=self._simulated.info.memory_gb,
            arch=self._simulated.info.arch,
        )

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        metrics = self._simulated.run(config, steps)
        return metrics.model_copy(update={"projected": False, "runner_kind": "torch"})
