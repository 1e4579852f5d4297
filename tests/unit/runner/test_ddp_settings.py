"""The workload's DDP settings reach ``DistributedDataParallel`` as the Trainer passes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from pytest_goblin.runner.distributed import TorchRanks  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig  # noqa: E402


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Iterator[None]:
    """A gloo process group of one rank in this process: enough to build a DDP module."""
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("no torch.distributed, or a process group already exists")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("find_unused", "bucket_mb", "cap_bytes"),
    [(True, 50, 50 * 2**20), (False, None, 25 * 2**20)],
)
def test_ddp_wrapping_takes_the_workload_settings(
    one_rank_group: None, find_unused: bool, bucket_mb: int | None, cap_bytes: int
) -> None:
    ranks = TorchRanks(
        0,
        1,
        "ddp",
        torch.device("cpu"),
        find_unused_parameters=find_unused,
        bucket_cap_mb=bucket_mb,
    )
    wrapped = ranks.wrap(torch.nn.Linear(4, 4))
    assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
    assert wrapped.find_unused_parameters is find_unused
    # torch 2.13 torch/nn/parallel/distributed.py: bucket_bytes_cap = bucket_cap_mb MiB,
    # 25 MiB when unset
    assert wrapped.bucket_bytes_cap == cap_bytes


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, True),  # a full fine-tune without checkpointing: the Trainer turns it on
        ({"gradient_checkpointing": True}, False),
        ({"gradient_checkpointing": True, "lora_rank": 8}, True),  # a PeftModel: on
        ({"ddp_find_unused_parameters": False}, False),
        ({"gradient_checkpointing": True, "ddp_find_unused_parameters": True}, True),
    ],
)
def test_unset_find_unused_parameters_is_the_trainers_choice(
    fields: dict[str, object], expected: bool
) -> None:
    assert WorkloadConfig.model_validate(fields).find_unused_parameters is expected
