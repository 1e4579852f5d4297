"""The workload's DDP settings reach ``DistributedDataParallel`` as the Trainer passes them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def test_accumulating_micro_batches_skip_ddp_sync(one_rank_group: None) -> None:
    ranks = TorchRanks(0, 1, "ddp", torch.device("cpu"))
    wrapped = ranks.wrap(torch.nn.Linear(4, 4))
    with ranks.accumulating(wrapped):
        assert wrapped.require_backward_grad_sync is False
    assert wrapped.require_backward_grad_sync is True


@dataclass
class CountingRanks(TorchRanks):
    """Counts the gradient buckets DDP hands to its communication hook."""

    reduced: int = 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        wrapped = super().wrap(model)

        # unannotated: DDP checks a hook's annotations against the classes themselves,
        # which this module's postponed (string) annotations are not
        def count(state, bucket):  # type: ignore[no-untyped-def]
            self.reduced += 1
            future: Any = torch.futures.Future()
            future.set_result(bucket.buffer())
            return future

        wrapped.register_comm_hook(None, count)
        return wrapped


def test_gradients_are_synchronised_once_per_optimizer_step(one_rank_group: None) -> None:
    """As the Trainer does: the micro-batches before the last of each step skip DDP's
    all-reduce (a tiny model's gradients are one bucket)."""
    from pytest_goblin.runner.training import RunRequest, measure

    arch = {"layers": 1, "hidden": 32, "intermediate": 64, "heads": 2, "vocab": 64}
    config = WorkloadConfig(
        model=arch, world_size=1, strategy="ddp", batch_size=1, seq_len=8, grad_accum_steps=3
    )
    ranks = CountingRanks(0, 1, "ddp", torch.device("cpu"))
    request = RunRequest(config=config, steps=2, warmup=1, sample_cost_s=0.0)
    measurement = measure(request, torch.device("cpu"), ranks=ranks)
    # every optimizer step outside the compute-only ones (under no_sync) reduces once
    assert ranks.reduced == len(measurement.losses)
