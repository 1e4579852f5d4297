"""What a new user meets following the README: the smallest workloads, their typos, and the
messages that point back at their own files (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.workloads import TUNED_YAML
from pytest_goblin.errors import WorkloadError
from pytest_goblin.workload.read import load_workload


def write(pytester: pytest.Pytester, relpath: str, text: str) -> None:
    path = pytester.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def test_a_workload_that_names_only_its_model_is_audited_with_trainer_defaults(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/minimal.goblin.yaml", "model: qwen2.5-0.5b\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*precision: fp32 -> bf16*"])


def test_a_misspelt_key_in_a_goblin_file_names_the_key_and_a_suggestion(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/typo.goblin.yaml", "model: llama-3-8b\ngradient_acumulation_steps: 4\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*w/typo.goblin.yaml: field 'gradient_acumulation_steps': "
            "unknown key*did you mean 'grad_accum_steps'?*"
        ]
    )


def test_a_broken_workload_named_on_the_command_line_does_not_stop_the_others(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/typo.goblin.yaml", "model: llama-3-8b\nbatch_szie: 4\n")
    write(pytester, "w/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    result = run_goblin(pytester, "w/typo.goblin.yaml", "w/fine.goblin.yaml")
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(["*w/typo.goblin.yaml: field 'batch_szie': unknown key*"])


def test_an_unknown_preset_in_a_model_only_file_lists_the_presets(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/preset.goblin.yaml", "model: llama-3-9b\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*field 'model': unknown model preset 'llama-3-9b'*"])


def test_a_stray_yaml_with_a_model_key_met_while_scanning_is_still_ignored(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/serving.yaml", "model: my-org/chat\nreplicas: 3\nport: 8080\n")
    write(pytester, "w/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    result = run_goblin(pytester, "--collect-only", "-q", "w")
    result.stdout.fnmatch_lines(["w/fine.goblin.yaml::fine", "1 test collected*"])


@pytest.mark.parametrize("option", ["--goblin-save", "--goblin-compare"])
def test_a_bare_run_option_before_a_directory_without_a_slash_is_refused(
    pytester: pytest.Pytester, option: str
) -> None:
    write(pytester, "workloads/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    result = pytester.runpytest("--goblin", "--goblin-fake", option, "workloads")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}: 'workloads' is a path here*write {option}=NAME*"])
    assert not (pytester.path / ".goblin").exists()


def test_a_run_named_like_a_directory_is_saved_when_written_with_an_equals_sign(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "workloads/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save=workloads", "workloads")
    assert [p.name for p in (pytester.path / ".goblin" / "runs").iterdir()] == [
        "0001_workloads.json"
    ]


NO_FLASH_RUNNER = """
from pytest_goblin.runner.device_session import SimulatedDevice


class NoFlash:
    '''A runner whose device has no flash-attention kernels.'''

    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info

    def unsupported(self, config):
        return "no flash-attention kernels here" if config.attention_impl == "flash" else None

    def run(self, config, steps):
        return self.projector.run(config, steps)


def pytest_goblin_make_runner(device, settings):
    return NoFlash()
"""


def test_a_skipped_workload_is_reported_at_its_own_file_not_inside_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(NO_FLASH_RUNNER)
    write(
        pytester,
        "w/flash.goblin.yaml",
        "model: qwen2.5-0.5b\nattention_impl: flash\nprecision: bf16\n",
    )
    result = run_goblin(pytester, "-rs", "w")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [1] w/flash.goblin.yaml:1: no flash-attention kernels here"]
    )
    result.stdout.no_fnmatch_line("*plugin.py*")


def test_the_summary_says_when_reused_audits_leave_the_event_log_without_their_events(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    args = ("--goblin", "--goblin-fake", "--goblin-events", "events.jsonl", "w")
    pytester.runpytest(*args)
    result = pytester.runpytest(*args)
    assert (pytester.path / "events.jsonl").read_text() == ""
    result.stdout.fnmatch_lines(
        [
            "cache: 1 of 1 audits reused from an earlier run with the same "
            "inputs, so --goblin-events has no events for them "
            "(--goblin-no-cache audits afresh)"
        ]
    )


def test_a_torchtune_config_without_a_max_seq_len_is_told_it_is_not_set(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "model:\n  _component_: torchtune.models.llama3_2.llama3_2_1b\n"
        "optimizer:\n  _component_: torch.optim.AdamW\nbatch_size: 2\n"
    )
    with pytest.raises(
        WorkloadError,
        match=r"recipe.yaml: field 'tokenizer.max_seq_len': "
        r"tokenizer.max_seq_len is not set \(or null\)",
    ):
        load_workload(path, "recipe.yaml")


def test_a_sidecar_with_broken_yaml_is_one_line_naming_the_line_and_column(
    pytester: pytest.Pytester,
) -> None:
    write(
        pytester,
        "w/train.json",
        '{"model_name_or_path": "Qwen/Qwen2.5-0.5B", "bf16": true, '
        '"per_device_train_batch_size": 4, "optim": "adamw_torch"}',
    )
    write(pytester, "w/train.goblin.yaml", "world_size: [8\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "w/train.goblin.yaml: cannot read the sidecar: invalid YAML at "
            "line 2, column 1: did not find expected ',' or ']'"
        ]
    )
    result.stdout.no_fnmatch_line("*<unicode string>*")


def test_a_rule_pack_with_broken_yaml_is_one_line_naming_the_line_and_column(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "rules/site.yaml", "rules:\n  - id: [broken\n")
    write(pytester, "w/fine.goblin.yaml", "model: qwen2.5-0.5b\nprecision: bf16\n")
    result = run_goblin(pytester, "--goblin-kb=rules", "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: goblin knowledge base: rules/site.yaml: not valid "
        "YAML at line 3, column 1: did not find expected ',' or ']'"
    )


def test_the_first_line_of_a_regression_says_how_much_so_the_short_summary_does_too(
    pytester: pytest.Pytester,
) -> None:
    tuned = TUNED_YAML.replace("name: llama-tuned", "name: a")
    write(pytester, "w/a.goblin.yaml", tuned)
    run_goblin(pytester, "--goblin-save=m", "w")
    write(pytester, "w/a.goblin.yaml", tuned.replace("batch_size: 4", "batch_size: 1"))
    result = run_goblin(pytester, "--goblin-compare=m", "--goblin-compare-fail=5", "-rf", "w")
    result.stdout.fnmatch_lines(
        [
            "a: regressed against saved run 0001_m (-*%):",
            "FAILED w/a.goblin.yaml::a - a: regressed against saved run 0001_m (-*%):",
        ]
    )
