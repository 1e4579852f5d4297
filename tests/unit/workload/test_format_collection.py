"""Config files of other frameworks as the plugin collects and reports them (pytester)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers.format_support import FILES

AXOLOTL = FILES / "axolotl" / "qwen25-7b-support-qlora.yml"
SCRIPT = FILES / "hf" / "llama3_qlora_train.py"


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def copy(pytester: pytest.Pytester, source: object, relpath: str) -> None:
    target = pytester.path / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)  # type: ignore[arg-type]


def diff_in(lines: list[str], first: str) -> str:
    """The unified diff printed in a failure text, from its ``---`` line to its last hunk line."""
    start = lines.index(first)
    end = start + 2
    while end < len(lines) and lines[end][:1] in ("@", " ", "+", "-", "\\"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


def test_configs_of_every_format_are_collected_under_a_named_directory(
    pytester: pytest.Pytester,
) -> None:
    for path in FILES.rglob("*.*"):
        if not path.is_relative_to(FILES / "real"):
            copy(pytester, path, f"w/{path.parent.name}/{path.name}")
    result = run_goblin(pytester, "--collect-only", "-q", "w")
    collected = [line for line in result.outlines if "::" in line]
    assert len(collected) == 9
    assert not any("not_workloads" in line for line in collected)
    assert "w/hf/llama3_qlora_train.py::llama3_qlora_train" in collected


def test_a_test_module_is_left_to_pytest_even_if_it_builds_trainingarguments(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_args="def test_x():\n"
        "    from transformers import TrainingArguments\n"
        "    TrainingArguments(output_dir='o', bf16=True)\n"
    )
    result = run_goblin(pytester, "--collect-only", "-q", ".")
    result.stdout.fnmatch_lines(["test_args.py::test_x"])
    result.stdout.no_fnmatch_line("*test_args.py::test_args*")


def test_a_sidecar_is_not_a_workload_of_its_own(pytester: pytest.Pytester) -> None:
    copy(pytester, AXOLOTL, "w/support.yml")
    (pytester.path / "w/support.goblin.yaml").write_text("goblin:\n  threshold: 0.5\n")
    result = run_goblin(pytester, "--collect-only", "-q", "w")
    result.stdout.fnmatch_lines(["w/support.yml::support", "1 test collected*"])


def test_the_json_report_names_the_format(pytester: pytest.Pytester) -> None:
    copy(pytester, AXOLOTL, "w/support.yml")
    copy(pytester, SCRIPT, "w/train.py")
    run_goblin(pytester, "w", "--goblin-json", "r.json")
    report = json.loads((pytester.path / "r.json").read_text())
    assert {w["name"]: w["format"] for w in report["workloads"]} == {
        "support": "axolotl",
        "train": "hf-script",
    }


def test_an_axolotl_failure_shows_a_diff_of_its_yaml_that_keeps_comments_and_applies(
    pytester: pytest.Pytester,
) -> None:
    copy(pytester, AXOLOTL, "w/support.yml")
    original = (pytester.path / "w/support.yml").read_text()
    result = run_goblin(pytester, "w")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*precision: fp16 -> bf16*",
            "patch for w/support.yml (git apply):",
            "--- a/w/support.yml",
            "+++ b/w/support.yml",
        ]
    )
    result.stdout.fnmatch_lines(["+fp16: false   # the old V100 box"])
    diff = diff_in(result.outlines, "--- a/w/support.yml")
    applied = subprocess.run(
        ["git", "apply", "--check", "-"],
        input=diff,
        text=True,
        cwd=pytester.path,
        capture_output=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert (pytester.path / "w/support.yml").read_text() == original


def test_a_value_it_cannot_map_is_an_item_error_naming_the_key(pytester: pytest.Pytester) -> None:
    (pytester.path / "w").mkdir()
    (pytester.path / "w/ft.yaml").write_text(
        "model_name_or_path: meta-llama/Meta-Llama-3-8B\nstage: sft\nfinetuning_type: freeze\n"
    )
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*w/ft.yaml: field 'finetuning_type': *freeze*"])
