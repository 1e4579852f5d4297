"""The ZeRO stage and offload of a ``deepspeed:`` key, as the frameworks that take one pass it on.

axolotl, the Hugging Face Trainer (and so TRL) and LLaMA-Factory accept either a
DeepSpeed config inline or the path of its JSON file. An inline config is read
(``zero_optimization.stage``, ``offload_optimizer.device``, ``offload_param.device``;
DeepSpeed's default stage is 0, v0.18.2 ``deepspeed/runtime/zero/config.py``), and its
top-level ``communication_data_type``, the dtype gradients are reduced in. A path
is a file outside the workload, so it is read from the files the frameworks ship,
which their examples name; any other path leaves the stage unknown, which the memory
model takes as stage 3 and a sidecar's ``zero_stage`` can state. None of the shipped
files sets ``communication_data_type``, so theirs is DeepSpeed's default.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pytest_goblin.errors import WorkloadError

SHIPPED: dict[str, tuple[int, bool, bool]] = {
    # axolotl v0.18.0, deepspeed_configs/*.json: (stage, offload_optimizer, offload_param)
    "deepspeed_configs/zero1.json": (1, False, False),
    "deepspeed_configs/zero1_torch_compile.json": (1, False, False),
    "deepspeed_configs/zero2.json": (2, True, False),
    "deepspeed_configs/zero2_torch_compile.json": (2, True, False),
    "deepspeed_configs/zero3.json": (3, False, False),
    "deepspeed_configs/zero3_bf16.json": (3, False, False),
    "deepspeed_configs/zero3_bf16_cpuoffload_all.json": (3, True, True),
    "deepspeed_configs/zero3_bf16_cpuoffload_params.json": (3, False, True),
    # LLaMA-Factory v0.9.5, examples/deepspeed/*.json
    "examples/deepspeed/ds_z0_config.json": (0, False, False),
    "examples/deepspeed/ds_z2_config.json": (2, False, False),
    "examples/deepspeed/ds_z2_autotp_config.json": (2, False, False),
    "examples/deepspeed/ds_z2_offload_config.json": (2, True, False),
    "examples/deepspeed/ds_z3_config.json": (3, False, False),
    "examples/deepspeed/ds_z3_fp8_config.json": (3, True, False),
    "examples/deepspeed/ds_z3_offload_config.json": (3, True, True),
}
"""The DeepSpeed configs axolotl and LLaMA-Factory ship, by the path their examples give
(``zero_optimization`` of each file at the version named)."""

_OFFLOAD_DEVICES = ("cpu", "nvme")
COMMUNICATION_DATA_TYPES = ("fp16", "bf16", "fp32")
"""What DeepSpeed accepts as ``communication_data_type``, case-insensitively, besides null
(DeepSpeed v0.19.6 ``deepspeed/runtime/config.py`` ``get_communication_data_type``: any
other value raises "Invalid communication_data_type")."""


def zero_fields(value: Any, display: str, key: str) -> dict[str, Any]:
    """``zero_stage``, ``offload_optimizer``, ``offload_params`` and
    ``communication_data_type`` (None: DeepSpeed's default) as far as ``value`` (the
    ``deepspeed:`` key's value) decides them; empty for a config file it cannot see, whose
    values a sidecar may give."""
    if isinstance(value, dict):
        return _inline(value, display, key)
    if not isinstance(value, str):
        return {}
    path = PurePosixPath(value.strip().replace("\\", "/"))
    for shipped, (stage, optimizer, params) in SHIPPED.items():
        if path.parts[-len(PurePosixPath(shipped).parts) :] == PurePosixPath(shipped).parts:
            return {
                "zero_stage": stage,
                "offload_optimizer": optimizer,
                "offload_params": params,
                "communication_data_type": None,
            }
    return {}


def _inline(config: dict[str, Any], display: str, key: str) -> dict[str, Any]:
    zero = config.get("zero_optimization") or {}
    if not isinstance(zero, dict):
        raise WorkloadError(display, "zero_optimization is not a mapping", field=f"{key}")
    stage = zero.get("stage", 0)
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise WorkloadError(
            display,
            f"ZeRO stage {stage!r} is not one of 0, 1, 2, 3",
            field=f"{key}.zero_optimization.stage",
        )
    fields: dict[str, Any] = {
        "zero_stage": stage,
        "offload_optimizer": _offloaded(zero.get("offload_optimizer")),
        "offload_params": _offloaded(zero.get("offload_param")),
        "communication_data_type": None,
    }
    dtype = config.get("communication_data_type")
    if dtype is not None:
        if not isinstance(dtype, str) or dtype.lower() not in COMMUNICATION_DATA_TYPES:
            raise WorkloadError(
                display,
                f"communication_data_type {dtype!r} is not one DeepSpeed accepts "
                f"({', '.join(COMMUNICATION_DATA_TYPES)})",
                field=f"{key}.communication_data_type",
            )
        fields["communication_data_type"] = dtype.lower()
    return fields


def _offloaded(section: Any) -> bool:
    """An ``offload_*`` section sends its states to the host unless its device is none."""
    return isinstance(section, dict) and str(section.get("device", "none")) in _OFFLOAD_DEVICES
