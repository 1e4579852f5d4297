"""Specification of sidecar files: dims, world size and goblin settings for foreign formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.format_support import write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.workload.sidecar import is_sidecar, sidecar_path

AXOLOTL = """\
base_model: acme/mystery-3b
micro_batch_size: 2
gradient_accumulation_steps: 1
sequence_len: 1024
"""
DIMS = "model: {layers: 4, hidden: 512, intermediate: 1024, heads: 8, kv_heads: 2, vocab: 32000}\n"


def test_an_unknown_model_without_dims_says_how_to_give_them(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL)
    message = str(info.value)
    assert info.value.field == "base_model"
    assert "'acme/mystery-3b'" in message
    assert "mystery.goblin.yaml" in message
    assert "layers, hidden, intermediate, heads, kv_heads, vocab" in message


def test_a_file_that_names_no_model_points_at_the_sidecar_too(tmp_path: Path) -> None:
    text = '{"output_dir": "o", "per_device_train_batch_size": 2, "bf16": true, "block_size": 512}'
    with pytest.raises(WorkloadError, match=r"does not name its model.*args\.goblin\.yaml"):
        write(tmp_path, "w/args.json", text)


def test_the_sidecar_gives_dims_world_size_and_settings(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(
        DIMS + "world_size: 8\ngoblin:\n  threshold: 0.25\n  ignore: [fused-adamw]\n"
    )
    workload = write(tmp_path, "w/mystery.yml", AXOLOTL)
    assert (workload.config.arch.layers, workload.config.world_size) == (4, 8)
    assert workload.settings.threshold == 0.25
    assert workload.settings.ignore == ["fused-adamw"]
    assert workload.source.format == "axolotl"


def test_a_sidecar_name_names_the_workload(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + "name: mystery-sft\n")
    assert write(tmp_path, "w/mystery.yml", AXOLOTL).name == "mystery-sft"


def test_an_unknown_sidecar_key_is_an_error_naming_the_sidecar(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + "precision: bf16\n")
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL)
    assert info.value.path == "w/mystery.goblin.yaml"
    assert info.value.field == "precision"


def test_bad_dims_in_the_sidecar_are_reported_against_the_sidecar(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text("model: {layers: 4}\n")
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL)
    assert info.value.path == "w/mystery.goblin.yaml"
    assert info.value.field == "model"


@pytest.mark.parametrize("value", [0, -5, 10_000_001, "long", [2048]])
def test_a_sidecar_seq_len_that_is_not_a_positive_int_in_bounds_is_an_error_naming_it(
    tmp_path: Path, value: object
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + f"seq_len: {value!r}\n")
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL)
    assert info.value.path == "w/mystery.goblin.yaml"
    assert info.value.field == "seq_len"


def test_a_sidecar_seq_len_equal_to_the_files_own_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + "seq_len: 1024\n")
    assert write(tmp_path, "w/mystery.yml", AXOLOTL).config.seq_len == 1024


def test_a_sidecar_seq_len_that_contradicts_the_file_is_an_error_naming_the_files_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + "seq_len: 4096\n")
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL)
    assert (info.value.path, info.value.field) == ("w/mystery.goblin.yaml", "seq_len")
    assert "`sequence_len` is 1024" in info.value.message


def test_a_sidecar_seq_len_does_not_override_a_frameworks_default_either(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/mystery.goblin.yaml").write_text(DIMS + "seq_len: 4096\n")
    with pytest.raises(WorkloadError, match="framework's default, 512") as info:
        write(tmp_path, "w/mystery.yml", AXOLOTL.replace("sequence_len: 1024\n", ""))
    assert info.value.field == "seq_len"


def test_a_sidecar_is_recognised_by_its_owner_beside_it(tmp_path: Path) -> None:
    owner = tmp_path / "train_qlora.py"
    owner.write_text("")
    sidecar = sidecar_path(owner)
    sidecar.write_text(DIMS)
    assert sidecar.name == "train_qlora.goblin.yaml"
    assert is_sidecar(sidecar)
    lone = tmp_path / "llama.goblin.yaml"
    lone.write_text(DIMS)
    assert not is_sidecar(lone)


def test_the_sidecar_says_how_a_launcher_shards_the_run(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/run.goblin.yaml").write_text(DIMS + "world_size: 8\nstrategy: fsdp\n")
    config = write(tmp_path, "w/run.yml", AXOLOTL).config
    assert (config.world_size, config.strategy) == (8, "fsdp")


def test_a_sidecar_strategy_never_overrides_the_files_own(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/run.goblin.yaml").write_text(DIMS + "strategy: ddp\n")
    with pytest.raises(WorkloadError, match="differs from the file's own strategy") as info:
        write(tmp_path, "w/run.yml", AXOLOTL + "fsdp:\n  - full_shard\n")
    assert info.value.field == "strategy"
