"""Every format, round trip: read → patch → apply the diff with git/patch → read again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.format_support import FILES, apply_diff, change, load
from pytest_goblin.workload.read import Workload, load_workload, plan_patch

WORKLOAD_FILES = sorted(
    str(path.relative_to(FILES))
    for path in FILES.rglob("*.*")
    if path.parent.name != "not_workloads" and not path.is_relative_to(FILES / "real")
)
CANDIDATES = [
    ("precision", "bf16"),
    ("attention_impl", "flash"),
    ("optimizer", "adamw_torch_fused"),
    ("gradient_checkpointing", False),
    ("torch_compile", True),
    ("dataloader_workers", 6),
    ("dataloader_pin_memory", True),
    ("dataloader_persistent_workers", True),
    ("dataloader_prefetch_factor", 3),
    ("batch_size", 3),
    ("seq_len", 1536),
    ("packing", True),
    ("env_vars.TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL", "1"),
]
TOOLS = {"git": ["git", "apply"], "patch": ["patch", "-p1", "--quiet"]}


def changes_for(workload: Workload) -> list:
    candidates = [change(workload, field, new) for field, new in CANDIDATES]
    return [c for c in candidates if c.old != c.new]


def test_every_test_file_is_a_workload_in_the_format_its_folder_names() -> None:
    found: dict[str, set[str]] = {}
    for rel in WORKLOAD_FILES:
        found.setdefault(Path(rel).parent.name, set()).add(load_workload(FILES / rel).source.format)
    assert found == {
        "axolotl": {"axolotl"},
        "torchtune": {"torchtune"},
        "llamafactory": {"llamafactory"},
        "trl": {"trl"},
        "hf": {"hf-args", "hf-script"},
    }


@pytest.mark.parametrize("relpath", WORKLOAD_FILES)
def test_the_patched_file_reads_back_as_the_patched_config(tmp_path: Path, relpath: str) -> None:
    workload = load(tmp_path, relpath)
    planned = plan_patch(workload, changes_for(workload))
    assert planned.changes, "each test file can take some of the candidate changes"
    patched = tmp_path / "patched" / relpath
    patched.parent.mkdir(parents=True)
    patched.write_text(planned.text, encoding="utf-8")
    expected = workload.config.model_dump()
    for c in planned.changes:
        top, _, leaf = c.field.partition(".")
        if leaf:
            expected[top][leaf] = c.new
        else:
            expected[top] = c.new
    assert load_workload(patched).config.model_dump() == expected


@pytest.mark.parametrize("relpath", WORKLOAD_FILES)
def test_a_change_the_format_cannot_express_is_dropped_with_a_reason(
    tmp_path: Path, relpath: str
) -> None:
    workload = load(tmp_path, relpath)
    planned = plan_patch(workload, changes_for(workload))
    kept = {c.field for c in planned.changes}
    for dropped, why in planned.dropped:
        assert dropped.field not in kept
        assert why


@pytest.mark.parametrize("relpath", WORKLOAD_FILES)
def test_comments_and_untouched_lines_survive_the_patch(tmp_path: Path, relpath: str) -> None:
    workload = load(tmp_path, relpath)
    planned = plan_patch(workload, changes_for(workload))
    original = workload.source.text.splitlines()
    edited = planned.text.splitlines()
    comments = [line.strip() for line in original if line.lstrip().startswith("#")]
    assert all(any(c == line.strip() for line in edited) for c in comments)
    removed = [
        line
        for line in planned.diff.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    assert len(removed) <= len(planned.changes) * 3


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("relpath", WORKLOAD_FILES)
def test_the_diff_applies_from_the_directory_pytest_ran_in(
    tmp_path: Path, relpath: str, tool: str
) -> None:
    if shutil.which(TOOLS[tool][0]) is None:
        pytest.skip(f"{TOOLS[tool][0]} is not installed")
    workload = load(tmp_path, relpath)
    planned = plan_patch(workload, changes_for(workload))
    if tool == "git":
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = apply_diff(TOOLS[tool], planned.diff, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / relpath).read_text(encoding="utf-8") == planned.text
