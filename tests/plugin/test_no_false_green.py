"""A gate must never turn green by accident (issue 18, cases 1-4).

Each test runs the plugin the way a user would, on a file that used to vanish, be read
one way and patched another, be coerced into another workload, or slip past the
threshold, and asserts that the run says so instead of passing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers.workloads import TUNED_YAML

AXOLOTL_BROKEN = """\
base_model: meta-llama/Meta-Llama-3-8B
sequence_len: 2048
micro_batch_size: [2
flash_attention: true
"""
"""An axolotl config with a YAML syntax error (an unclosed list)."""

SCRIPT_BROKEN = """\
from transformers import TrainingArguments

args = TrainingArguments(
    output_dir="out",
    per_device_train_batch_size=4,
    bf16=True
    learning_rate=2e-4,
)
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """The gate over ``args`` with a JSON report: the run and its workloads by file."""
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-fake", "--goblin-json", "out.json", *args
    )
    report = json.loads((pytester.path / "out.json").read_text())
    return result, {w["path"]: w for w in report["workloads"]}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("axolotl.yml", AXOLOTL_BROKEN, "invalid YAML at line 4, column 16: *"),
        ("train.py", SCRIPT_BROKEN, "invalid Python at line 6: *"),
    ],
)
def test_a_broken_config_in_a_scanned_directory_is_an_error_not_silence(
    pytester: pytest.Pytester, name: str, text: str, message: str
) -> None:
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "good.goblin.yaml").write_text(TUNED_YAML)
    (pytester.path / "w" / name).write_text(text)
    result, workloads = run(pytester, "w")
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    broken = workloads[f"w/{name}"]
    assert broken["outcome"] == "error"
    result.stdout.fnmatch_lines([f"w/{name}: {message}"])


def test_an_unrelated_broken_yaml_in_a_scanned_directory_stays_unrelated(
    pytester: pytest.Pytester,
) -> None:
    """A file that names no model is not a workload, parsed or not (a CI config, say)."""
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "good.goblin.yaml").write_text(TUNED_YAML)
    (pytester.path / "w" / "ci.yaml").write_text("jobs: [unclosed\n")
    result, workloads = run(pytester, "w")
    result.assert_outcomes(passed=1)
    assert list(workloads) == ["w/good.goblin.yaml"]


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (
            ".yaml",
            TUNED_YAML + "attention_impl: eager\n",
            "invalid YAML at line 13, column 1: duplicate key 'attention_impl' (first at line 8); "
            "give each key once",
        ),
        (
            ".json",
            '{"model": "llama-3-8b", "attention_impl": "flash", "precision": "bf16", '
            '"attention_impl": "eager"}',
            "field 'attention_impl': invalid JSON: duplicate key 'attention_impl' in one object; "
            "give each key once",
        ),
    ],
)
def test_a_duplicate_key_is_an_error_not_a_pass(
    pytester: pytest.Pytester, suffix: str, text: str, message: str
) -> None:
    """Read one way and patched another, a duplicated key used to pass the gate."""
    (pytester.path / f"w.goblin{suffix}").write_text(text)
    result, workloads = run(pytester, f"w.goblin{suffix}")
    result.assert_outcomes(errors=1)
    assert workloads[f"w.goblin{suffix}"]["error"] == f"w.goblin{suffix}: {message}"


def test_a_duplicate_key_in_a_framework_config_is_an_error(pytester: pytest.Pytester) -> None:
    text = AXOLOTL_BROKEN.replace("[2", "2") + "flash_attention: false\n"
    (pytester.path / "axolotl.yml").write_text(text)
    result, workloads = run(pytester, "axolotl.yml")
    result.assert_outcomes(errors=1)
    assert "duplicate key 'flash_attention' (first at line 4)" in workloads["axolotl.yml"]["error"]


@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "1e300", "10.5", "0", "-1"])
def test_a_threshold_that_would_switch_the_gate_off_is_refused(
    pytester: pytest.Pytester, value: str
) -> None:
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest("--goblin", "--goblin-fake", f"--goblin-threshold={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--goblin-threshold must be a fraction above 0 and at most 10*"])


def test_a_threshold_from_the_ini_file_or_the_environment_is_refused_the_same_way(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    pytester.makeini("[pytest]\ngoblin_threshold = inf\n")
    result = pytester.runpytest("--goblin", "--goblin-fake")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*goblin_threshold in tox.ini must be a fraction above 0*"])
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("GOBLIN_THRESHOLD", "1e300")
    result = pytester.runpytest("--goblin", "--goblin-fake")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*GOBLIN_THRESHOLD (environment) must be a fraction above 0*"])


def test_the_largest_threshold_is_accepted(pytester: pytest.Pytester) -> None:
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-threshold=10")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("value", [".inf", "1e300", "11"])
def test_a_workload_threshold_that_would_switch_the_gate_off_is_an_item_error(
    pytester: pytest.Pytester, value: str
) -> None:
    (pytester.path / "w.goblin.yaml").write_text(f"{TUNED_YAML}goblin:\n  threshold: {value}\n")
    result, workloads = run(pytester, "w.goblin.yaml")
    result.assert_outcomes(errors=1)
    assert "field 'goblin.threshold'" in workloads["w.goblin.yaml"]["error"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("batch_size: true", "field 'batch_size': expected an integer, got True"),
        ('seq_len: "2048"', "field 'seq_len': expected an integer, got '2048'"),
        ("batch_size: 4.0", "field 'batch_size': expected an integer, got 4.0"),
        (
            'gradient_checkpointing: "yes"',
            "field 'gradient_checkpointing': expected true or false, got 'yes'",
        ),
        ("packing: 1", "field 'packing': expected true or false, got 1"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_coerced(
    pytester: pytest.Pytester, line: str, message: str
) -> None:
    """``batch_size: true`` was read as batch 1: another workload than the file says."""
    (pytester.path / "w.goblin.yaml").write_text(f"model: llama-3-8b\n{line}\n")
    result, workloads = run(pytester, "w.goblin.yaml")
    result.assert_outcomes(errors=1)
    assert workloads["w.goblin.yaml"]["error"] == f"w.goblin.yaml: {message}"
