"""Multi-rank workloads as a user meets them: ``pytest --goblin --goblin-device cpu`` measures
a 2-rank FSDP workload with gloo ranks, and a 4-rank DDP one shrunk to 2 ranks, labelled so
in the terminal, JSON, Markdown and HTML reports (one session: a worker start costs seconds)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")

from pytest_goblin.runner import measured as live
from pytest_goblin.runner.worker import FAULT_ENV

WORKLOAD = """\
name: {name}
model: {{layers: 2, hidden: 64, intermediate: 172, heads: 4, kv_heads: 2, vocab: 256}}
seq_len: 32
batch_size: 2
lr: 3.0e-3
attention_impl: sdpa
optimizer: adamw_torch_fused
dataloader_workers: 1
dataloader_persistent_workers: true
world_size: {world_size}
strategy: {strategy}
goblin: {{sample_cost_ms: 0}}
"""


@pytest.fixture(autouse=True)
def isolated_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # device locks of their own, so that other pytest runs on this machine do not wait
    monkeypatch.setattr(live, "LOCK_DIR", tmp_path_factory.mktemp("locks"))
    monkeypatch.delenv(FAULT_ENV, raising=False)


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="2 gloo ranks need 2 CPU cores (one per rank)"
)
def test_ddp_and_fsdp_ranks_are_measured_and_a_shrunk_run_is_labelled(
    pytester: pytest.Pytester,
) -> None:
    for name, world_size, strategy in (
        ("fsdp2", 2, "fsdp"),
        ("ddp4", 4, "ddp"),
    ):
        path = pytester.path / "w" / f"{name}.goblin.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(WORKLOAD.format(name=name, world_size=world_size, strategy=strategy))
    result = pytester.runpytest(
        "--goblin",
        "--goblin-device",
        "cpu",
        "--goblin-steps",
        "2",
        "--goblin-warmup",
        "1",
        "--goblin-max-world-size",
        "2",
        "--goblin-json",
        "r.json",
        "--goblin-md",
        "r.md",
        "--goblin-html",
        "r.html",
        "-p",
        "no:cacheprovider",
        "-v",
        "w",
    )
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "r.json").read_text())
    baselines = {w["name"]: w["baseline"] for w in doc["workloads"]}
    for name in ("fsdp2", "ddp4"):
        baseline = baselines[name]
        assert baseline["projected"] is False and baseline["world_size"] == 2
        assert len(baseline["rank_peak_memory_gb"]) == 2
        assert 0.0 <= baseline["comm_share"] <= 1.0
        assert baseline["tokens_per_step"] == 2 * 2 * 32  # both ranks' batches
    assert baselines["fsdp2"]["shrunk_from_world_size"] is None
    assert baselines["ddp4"]["shrunk_from_world_size"] == 4
    label = "shrunk: measured on 2 of 4 ranks"
    result.stdout.fnmatch_lines(
        [
            f"ranks ddp4 (w/ddp4.goblin.yaml): {label}, exposed communication *",
            "ranks fsdp2 (w/fsdp2.goblin.yaml): 2 ranks, exposed communication *% of the step, "
            "per-rank peak */* GB",
        ]
    )
    assert label in (pytester.path / "r.md").read_text()
    assert label in (pytester.path / "r.html").read_text()
