"""Hostile inputs: each bad file ends its own item with a clear error, nothing else.

The corpus in ``tests/data/hostile/`` (plus a 50 MB file and symlink loops made here;
the files are named ``X.goblin.yaml`` only in the run, so that this repository's
own ``pytest --goblin`` never collects them) goes through the plugin in one pytest
process beside a good workload, under a
wall-time limit and an address-space limit. Each case must end as an item error
whose message names the file, the field where there is one, and what was
expected; the good workload must still pass; the session must end normally,
with no traceback and nothing executed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from helpers import paths
from helpers.workloads import TUNED_YAML
from pytest_goblin import safe_yaml
from pytest_goblin.catalogue.architectures import ModelArch
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import WorkloadConfig

HOSTILE = paths.DATA / "hostile"
WALL_TIME_S = 120
MEMORY_BYTES = 2 * 1024**3
"""The run's address-space limit: an alias bomb expanded, or a 50 MB file decoded and
parsed, would need far more than the plugin ever does (tens of MB)."""

RUN = """\
import resource, sys
import pytest
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.exit(pytest.main(sys.argv[1:]))
"""

ERRORS = {
    "empty.goblin.yaml": "file is empty",
    "binary.goblin.yaml": "not UTF-8 text (byte 0)",
    "latin1.goblin.yaml": "not UTF-8 text (byte 27)",
    "malformed-yaml.goblin.yaml": "invalid YAML at line 3, column 10: did not find expected ',' or ']'",
    "malformed-json.goblin.json": "invalid JSON at line 4, column 1: Expecting property name enclosed in double quotes",
    "python-tag.goblin.yaml": "invalid YAML at line 3, column 12: could not determine a constructor for the tag "
    "'tag:yaml.org,2002:python/object/apply:os.system'",
    "billion-laughs.goblin.yaml": "invalid YAML at line 6, column 6: aliases repeat more than 10,000 nodes (an alias "
    "bomb?); write the repeated values out",
    "recursive-alias.goblin.yaml": "invalid YAML at line 2, column 9: an alias refers to the anchor it is inside (a "
    "recursive structure); workloads are trees",
    "huge.goblin.yaml": "file is 52428800 bytes; workloads are limited to 1 MB",
    "deep-json.goblin.json": "nested more than 32 levels deep; a workload is a mapping with a few nested sections",
    "deep-yaml.goblin.yaml": "nested more than 32 levels deep; a workload is a mapping with a few nested sections",
    "list.goblin.yaml": "not a workload: expected a goblin workload (a mapping with `model` or `model_name`) "
    "or a config of one of: torchtune, llamafactory-v1, goblin, axolotl, firefly, llamafactory, "
    "open-instruct, trl, hf-args, hf-script",
    "unknown-key.goblin.yaml": "field 'gradient_acumulation_steps': unknown key (not a WorkloadConfig field; did you "
    "mean 'grad_accum_steps'?)",
    "unknown-setting.goblin.yaml": "field 'goblin.treshold': unknown key (not a goblin setting; did you mean 'threshold'?)",
    "wrong-type.goblin.yaml": "field 'batch_size': expected an integer, got 'four'",
    "batch-zero.goblin.yaml": "field 'batch_size': Input should be greater than or equal to 1 (got 0)",
    "negative-workers.goblin.json": "field 'dataloader_workers': Input should be greater than or equal to 0 (got -4)",
    "huge-seq-len.goblin.yaml": "field 'seq_len': Input should be less than or equal to 10000000 (got 1000000000)",
    "million-layers.goblin.yaml": "field 'model.layers': Input should be less than or equal to 10000 (got 1000000)",
    "nan-lr.goblin.yaml": "field 'lr': Input should be a finite number (got nan)",
    "infinite-lr.goblin.json": "field 'lr': Input should be a finite number (got inf)",
    "syntax_error_train.py": "invalid Python at line 6: invalid syntax. Perhaps you forgot a comma?",
    "duplicate-key.goblin.yaml": "invalid YAML at line 5, column 1: duplicate key 'attention_impl' (first at "
    "line 2); give each key once",
    "duplicate-key.goblin.json": "field 'attention_impl': invalid JSON: duplicate key 'attention_impl' in one "
    "object; give each key once",
    "bool-batch.goblin.yaml": "field 'batch_size': expected an integer, got True",
    "string-seq-len.goblin.yaml": "field 'seq_len': expected an integer, got '2048'",
    "yes-checkpointing.goblin.yaml": "field 'gradient_checkpointing': expected true or false, got 'yes'",
    "infinite-threshold.goblin.yaml": "field 'goblin.threshold': Input should be a finite number (got inf)",
}
"""Each case's file (under ``workloads/``, scripts at the top) and its item's error, after
``<path>: ``."""

MARKERS = ("PWNED_BY_SCRIPT", "PWNED_BY_SHELL", "PWNED_BY_YAML")
"""Files that the side-effect script and the python tag would create if anything ran them."""


def display_path(name: str) -> str:
    return name if name.endswith(".py") else f"workloads/{name}"


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole corpus in one bounded pytest run: its output, exit code and JSON report."""
    root = tmp_path_factory.mktemp("hostile")
    workloads = root / "workloads"
    workloads.mkdir()
    for case in [*HOSTILE.glob("*.yaml"), *HOSTILE.glob("*.json")]:
        shutil.copy(case, workloads / f"{case.stem}.goblin{case.suffix}")
    for script in HOSTILE.glob("*.py"):
        shutil.copy(script, root / script.name)
    (workloads / "tuned.goblin.yaml").write_text(TUNED_YAML)
    with (workloads / "huge.goblin.yaml").open("wb") as huge:
        huge.truncate(50 * 1024**2)
    (workloads / "nested").mkdir()
    (workloads / "nested" / "up").symlink_to("..", target_is_directory=True)
    (workloads / "self.goblin.yaml").symlink_to("self.goblin.yaml")
    command = [
        sys.executable,
        "-c",
        RUN.format(limit=MEMORY_BYTES),
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-json",
        "report.json",
        "-rA",
        "workloads",
        "syntax_error_train.py",
        "side_effect_train.py",
    ]
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=WALL_TIME_S, check=False
    )
    report = json.loads((root / "report.json").read_text())
    return {
        "root": root,
        "code": done.returncode,
        "output": done.stdout + done.stderr,
        "results": {w["nodeid"].split("::")[0]: w for w in report["workloads"]},
    }


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_hostile_file_is_an_item_error_naming_file_field_and_expectation(
    corpus_run: dict[str, Any], name: str
) -> None:
    path = display_path(name)
    result = corpus_run["results"][path]
    assert result["outcome"] == "error"
    assert result["error"] == f"{path}: {ERRORS[name]}"


def test_the_good_workload_in_the_same_run_passes(corpus_run: dict[str, Any]) -> None:
    assert corpus_run["results"]["workloads/tuned.goblin.yaml"]["outcome"] == "passed"


def test_the_session_ends_normally_with_item_errors_and_no_traceback(
    corpus_run: dict[str, Any],
) -> None:
    output = corpus_run["output"]
    assert corpus_run["code"] == pytest.ExitCode.TESTS_FAILED
    assert "errors during collection" not in output
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert "_ _ _ _" not in output, "pytest printed a traceback"
    assert "\n>   " not in output, "pytest printed a traceback"
    assert "pytest_goblin/" not in output, "a source file of the plugin was shown"


def test_each_error_is_reported_by_its_message_alone(corpus_run: dict[str, Any]) -> None:
    for name, message in ERRORS.items():
        path = display_path(name)
        assert f"\n{path}: {message}\n" in corpus_run["output"]


def test_every_case_is_one_item_and_a_symlink_loop_adds_none(corpus_run: dict[str, Any]) -> None:
    expected = {display_path(name) for name in ERRORS}
    expected |= {"workloads/tuned.goblin.yaml", "side_effect_train.py"}
    assert set(corpus_run["results"]) == expected


def test_a_training_script_is_read_never_run(corpus_run: dict[str, Any]) -> None:
    script = corpus_run["results"]["side_effect_train.py"]
    assert script["outcome"] in ("passed", "failed")
    assert script["config"]["precision"] == "bf16"
    assert not [m for m in MARKERS if (corpus_run["root"] / m).exists()]


def test_a_rule_pack_with_a_broken_rule_is_a_usage_error_naming_file_rule_and_field(
    pytester: pytest.Pytester,
) -> None:
    shutil.copytree(HOSTILE / "rules", pytester.path / "rules")
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-kb",
        "rules",
        "w.goblin.yaml",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: goblin knowledge base: rules/broken.yaml: rule 'team-bigger-batch' (#1): "
            "when.batch_size: unknown operator 'less_than'; expected one of eq, ne, in, not_in, "
            "lt, lte, gt, gte, regex, exists",
        ]
    )


def test_an_alias_bomb_in_a_rule_pack_is_a_usage_error(pytester: pytest.Pytester) -> None:
    rules = pytester.path / "rules"
    rules.mkdir()
    bomb = (HOSTILE / "billion-laughs.yaml").read_text().replace("model: llama-3-8b\n", "")
    (rules / "bomb.yaml").write_text(bomb.replace("extras:", "rules:"))
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-kb",
        "rules",
        "w.goblin.yaml",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: goblin knowledge base: rules/bomb.yaml: not valid YAML "
            "at line 5, column 6: aliases repeat more than 10,000 nodes*"
        ]
    )


def test_a_symlink_loop_named_on_the_command_line_is_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "loop.goblin.yaml").symlink_to("loop.goblin.yaml")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-fake", "loop.goblin.yaml"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: file or directory not found: loop.goblin.yaml"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_rule_pack_nested_too_deeply_is_a_usage_error_not_a_crash(
    pytester: pytest.Pytester,
) -> None:
    rules = pytester.path / "rules"
    rules.mkdir()
    depth = 900
    when = "{not: " * depth + "{batch_size: 2}" + "}" * depth
    (rules / "deep.yaml").write_text(f"- id: deep-rule\n  when: {when}\n")
    (pytester.path / "w.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-kb",
        "rules",
        "w.goblin.yaml",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: goblin knowledge base: rules/deep.yaml: nested more "
            "than 32 levels deep; conditions nest a few any/all/not levels"
        ]
    )


LARGEST = ModelArch(
    layers=10_000,
    hidden=1_000_000,
    intermediate=10_000_000,
    heads=10_000,
    kv_heads=10_000,
    vocab=10_000_000,
)


@pytest.mark.parametrize("device", ["mi300x", "h100", "cpu"])
def test_the_analytic_model_refuses_the_largest_valid_workload_as_out_of_memory(
    device: str,
) -> None:
    config = WorkloadConfig(
        model=LARGEST,
        batch_size=65_536,
        grad_accum_steps=65_536,
        seq_len=10_000_000,
        world_size=1_000_000,
        strategy="fsdp",
        precision="fp32",
        attention_impl="eager",
    )
    with pytest.raises(OutOfMemory, match=r"needs [\d.]+ GB of [\d.]+ GB"):
        SimulatedDevice(device).run(config, 500)


def test_the_analytic_model_gives_finite_numbers_at_the_longest_sequence() -> None:
    tiny = ModelArch(layers=1, hidden=64, intermediate=128, heads=1, vocab=1000)
    config = WorkloadConfig(model=tiny, batch_size=1, seq_len=10_000_000, precision="bf16")
    metrics = SimulatedDevice("mi300x").run(config, 500)
    numbers = [
        metrics.tokens_per_sec,
        metrics.step_time_s,
        metrics.hbm_peak_gb,
        metrics.mfu_pct,
        *metrics.waste_budget.model_dump().values(),
    ]
    assert all(isinstance(n, float) and 0 <= n < float("inf") for n in numbers)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a:\n  - x: 1\n    y: 2\n    x: 3\n", "duplicate key 'x' (first at line 2)"),
        ("base: &b {k: 1, k: 2}\nuse: *b\n", "duplicate key 'k' (first at line 1)"),
        ("? [a, b]\n: {c: 1, c: 2}\n", "duplicate key 'c' (first at line 2)"),
        ("a: {x: 1, x: 2}\nb: {y: 1, y: 2}\n", "duplicate key 'y' (first at line 2)"),
    ],
    ids=["in-a-list", "behind-an-alias", "under-a-complex-key", "last-mapping-first"],
)
def test_a_key_given_twice_anywhere_is_refused_naming_it(text: str, problem: str) -> None:
    """Every mapping is checked, at any depth and behind aliases; with several duplicates
    the walk reports the same one each time (the last mapping's, children last first)."""
    with pytest.raises(safe_yaml.UnsafeYaml) as caught:
        safe_yaml.load(text)
    assert caught.value.problem.startswith(problem)


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &b {lr: 1, seq: 2}\nrun:\n  <<: *b\n  <<: {extra: 3}\n  lr: 5\n"
    assert safe_yaml.load(text)["run"] == {"lr": 5, "seq": 2, "extra": 3}
