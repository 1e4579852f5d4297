"""FSDP1 and FSDP2 gather SHARD_GRAD_OP parameters differently under gradient accumulation
(FSDP1's no_sync keeps them gathered until the synchronised backward), so the readers record
which one a run uses and the analytic model counts the all-gathers accordingly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import workloads
from helpers.format_support import write
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import WorkloadError
from pytest_goblin.runner.analytic import AnalyticModel, sharded_collectives
from pytest_goblin.schemas import WorkloadConfig

TRL = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\n"
AXOLOTL = (
    "base_model: NousResearch/Meta-Llama-3.1-8B\nmicro_batch_size: 1\n"
    "gradient_accumulation_steps: 4\nsequence_len: 2048\n"
)
LLAMAFACTORY = (
    "model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct\nstage: sft\ndo_train: true\n"
    "finetuning_type: full\ncutoff_len: 1024\nbf16: true\n"
)


def config(**fields: Any) -> WorkloadConfig:
    return workloads.sharded_llama(**({"zero_stage": 2, "grad_accum_steps": 4} | fields))


def comm(cfg: WorkloadConfig) -> float:
    return AnalyticModel(get_device("h100")).step_budget(cfg).comm_excess


def test_fsdp1_shard_grad_op_gathers_once_per_step_under_no_sync() -> None:
    # FSDP2 reshards after every backward: one gather per micro-batch; FSDP1's no_sync
    # keeps the gathered parameters until the synchronised backward: one per step
    assert sharded_collectives(config(fsdp_version=2)) == (4, 1)
    assert sharded_collectives(config()) == (4, 1)
    assert sharded_collectives(config(fsdp_version=1)) == (1, 1)
    assert comm(config(fsdp_version=1)) < comm(config(fsdp_version=2))
    # one micro-batch per step: the same collectives either way
    one = {"grad_accum_steps": 1}
    assert comm(config(fsdp_version=1, **one)) == comm(config(fsdp_version=2, **one))


def test_fsdp1_full_shard_still_gathers_twice_per_micro_batch() -> None:
    # FULL_SHARD frees after the forward and after every backward, synced or not
    assert sharded_collectives(config(fsdp_version=1, zero_stage=3)) == (8, 1)


def test_fsdp1_is_refused_for_loops_that_run_fsdp2_only() -> None:
    with pytest.raises(ValidationError, match="fsdp_version 1"):
        config(fsdp_version=1, training_loop="torchtune")


@pytest.mark.parametrize(
    ("text", "version", "source"),
    [
        (TRL + "fsdp: shard_grad_op auto_wrap\n", 2, None),
        (TRL + "fsdp: shard_grad_op\nfsdp_config:\n  version: 1\n", 1, "fsdp_config.version"),
        (TRL + "fsdp: shard_grad_op\nfsdp_config:\n  fsdp_version: 1\n", 1, None),
        (AXOLOTL + "fsdp_config:\n  reshard_after_forward: false\n", 1, None),
        (AXOLOTL + "fsdp_version: 2\nfsdp_config:\n  reshard_after_forward: false\n", 2, None),
        (AXOLOTL + "fsdp_config:\n  version: 2\n", 2, "fsdp_config.version"),
        (LLAMAFACTORY + "fsdp: shard_grad_op auto_wrap\n", 1, None),
    ],
    ids=[
        "trainer-default",
        "trainer-version",
        "trainer-prefixed",
        "axolotl-default",
        "axolotl-top-level",
        "axolotl-in-config",
        "llamafactory-pinned",
    ],
)
def test_readers_record_the_fsdp_version(
    tmp_path: Path, text: str, version: int, source: str | None
) -> None:
    workload = write(tmp_path, "w/a.yaml", text)
    assert (workload.config.strategy, workload.config.fsdp_version) == ("fsdp", version)
    if source is not None:
        assert workload.sources["fsdp_version"] == source


def test_a_version_accelerate_cannot_build_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="FSDP version 3") as raised:
        write(tmp_path, "w/a.yaml", TRL + "fsdp: full_shard\nfsdp_config:\n  version: 3\n")
    assert raised.value.field == "fsdp_config.version"


def test_a_sidecar_gives_the_version_of_an_accelerate_launch(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    sidecar = tmp_path / "w/a.goblin.yaml"
    sidecar.write_text("world_size: 8\nstrategy: fsdp\nzero_stage: 2\nfsdp_version: 1\n")
    assert write(tmp_path, "w/a.yaml", TRL).config.fsdp_version == 1
    # TrainingArguments' fsdp decides it (transformers' default): a different one is an error
    with pytest.raises(WorkloadError, match="fsdp_version"):
        write(tmp_path, "w/a.yaml", TRL + "fsdp: shard_grad_op\n")


@pytest.mark.parametrize(
    ("comment", "version"),
    [
        ("# Config for 16 nodes of 8 H100s with FSDP1\n", 1),
        ("# Config for 1 node of 8 H100s with FSDP2\n", 2),
        ("# Config for 1 node of 8 H100s with FSDP\n", 1),
        ("# sbatch --nodes 2 slurm/train.slurm M sft c fsdp\n", 1),
    ],
)
def test_an_open_r1_launch_comment_gives_accelerates_fsdp_version(
    tmp_path: Path, comment: str, version: int
) -> None:
    # open-r1's recipes/accelerate_configs/fsdp.yaml names no fsdp_version: accelerate's 1
    config = write(tmp_path, "w/a.yaml", comment + TRL).config
    assert (config.strategy, config.fsdp_version) == ("fsdp", version)
