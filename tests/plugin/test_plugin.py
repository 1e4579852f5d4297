"""The plugin as a user meets it, driven through pytester."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers.workloads import MISTUNED_YAML as MISTUNED
from helpers.workloads import TUNED_YAML as TUNED


def write(pytester: pytest.Pytester, relpath: str, text: str) -> None:
    path = pytester.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def test_without_goblin_workload_files_are_not_collected(pytester: pytest.Pytester) -> None:
    write(pytester, "workloads/a.goblin.yaml", MISTUNED)
    result = pytester.runpytest("workloads")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("*= goblin =*")


def test_without_goblin_a_bad_goblin_setting_does_not_stop_other_tests(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOBLIN_THRESHOLD", "ten")
    pytester.makepyfile("def test_plain():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)
    with_goblin = pytester.runpytest("--goblin")
    assert with_goblin.ret == pytest.ExitCode.USAGE_ERROR
    with_goblin.stderr.fnmatch_lines(["*GOBLIN_THRESHOLD (environment)*must be a number*"])


def test_without_goblin_a_bad_setting_errors_only_the_tests_that_use_a_goblin_fixture(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOBLIN_THRESHOLD", "ten")
    pytester.makepyfile(
        "def test_plain():\n    assert True\n\n"
        "def test_audit(goblin_audit):\n    goblin_audit('w.goblin.yaml')\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*GOBLIN_THRESHOLD (environment)*must be a number*"])


def test_one_item_per_workload_file_with_the_workload_name_in_the_node_id(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "workloads/a.goblin.yaml", MISTUNED)
    write(pytester, "workloads/b.goblin.yaml", TUNED)
    result = run_goblin(pytester, "--collect-only", "-q", "workloads")
    result.stdout.fnmatch_lines(
        [
            "workloads/a.goblin.yaml::llama-mistuned",
            "workloads/b.goblin.yaml::llama-tuned",
        ]
    )


def test_file_name_is_the_workload_name_when_the_file_gives_none(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/my-run.goblin.yaml", TUNED.replace("name: llama-tuned\n", ""))
    result = run_goblin(pytester, "--collect-only", "-q", "w")
    result.stdout.fnmatch_lines(["w/my-run.goblin.yaml::my-run"])


def test_plain_yaml_under_an_explicit_directory_is_collected_when_it_is_a_workload(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "workloads/plain.yaml", TUNED)
    write(
        pytester, "workloads/plain.json", json.dumps({"model": "qwen2.5-0.5b", "precision": "bf16"})
    )
    result = run_goblin(pytester, "--collect-only", "-q", "workloads")
    result.stdout.fnmatch_lines(
        ["workloads/plain.json::plain", "workloads/plain.yaml::llama-tuned"]
    )


def test_plain_yaml_outside_explicit_paths_needs_the_pattern(pytester: pytest.Pytester) -> None:
    write(pytester, "sub/plain.yaml", TUNED)
    write(pytester, "sub/x.goblin.yaml", TUNED.replace("llama-tuned", "patterned"))
    result = run_goblin(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["sub/x.goblin.yaml::patterned", "1 test collected*"])


def test_non_workload_yaml_met_while_scanning_is_ignored(pytester: pytest.Pytester) -> None:
    write(pytester, "workloads/ci.yaml", "jobs:\n  build: {runs-on: ubuntu}\n")
    write(pytester, "workloads/broken-syntax.yaml", "a: [unclosed\n")
    write(pytester, "workloads/a.goblin.yaml", TUNED)
    result = run_goblin(pytester, "--collect-only", "-q", "workloads")
    result.stdout.fnmatch_lines(["workloads/a.goblin.yaml::llama-tuned", "1 test collected*"])


def test_explicit_non_workload_file_is_a_collection_error(pytester: pytest.Pytester) -> None:
    write(pytester, "ci.yaml", "jobs:\n  build: {runs-on: ubuntu}\n")
    result = run_goblin(pytester, "ci.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ci.yaml: not a workload*"])


def test_custom_patterns_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngoblin_patterns = *.perf.yaml\n")
    write(pytester, "w/a.perf.yaml", TUNED)
    write(pytester, "w/b.goblin.yaml", TUNED.replace("llama-tuned", "other"))
    result = run_goblin(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["w/a.perf.yaml::llama-tuned", "1 test collected*"])


def test_mistuned_workload_fails_and_well_tuned_passes(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    write(pytester, "w/good.goblin.yaml", TUNED)
    result = run_goblin(pytester, "w")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED w/bad.goblin.yaml::llama-mistuned*"])


def test_failure_text_names_speedup_device_changes_rules_citations_and_diff(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    result = run_goblin(pytester, "w")
    result.stdout.fnmatch_lines(
        [
            "*llama-mistuned: a patched config is *× faster (projected on AMD Instinct MI300X "
            "(simulated)); threshold 1.10×",
            "*baseline: * tok/s*",
            "*patched: * tok/s*",
            "*precision: fp32 -> bf16*[[]bf16-mixed-precision[]]",
            "*https://*",
            "*attention_impl: eager -> flash*[[]flash-attention[]]",
            "*patch for w/bad.goblin.yaml (git apply):",
            "--- a/w/bad.goblin.yaml",
            "+++ b/w/bad.goblin.yaml",
            "-precision: fp32   # copied from a tutorial",
            "+precision: bf16   # copied from a tutorial",
        ]
    )


def test_summary_table_has_a_header_line_and_one_row_per_workload(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that the table keeps every column
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    write(pytester, "w/good.goblin.yaml", TUNED)
    result = run_goblin(pytester, "w")
    result.stdout.fnmatch_lines(
        [
            "*= goblin =*",
            "device: AMD Instinct MI300X (simulated) | backend: planner | threshold: 10% | "
            "numbers: projected*",
            "workload*baseline tok/s*patched tok/s*speedup*verdict*rules",
            "llama-mistuned*FAILED*bf16-mixed-precision*",
            "llama-tuned*passed*",
        ]
    )


def test_threshold_from_the_command_line(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    result = run_goblin(pytester, "w", "--goblin-threshold", "9")
    result.assert_outcomes(passed=1)


def test_threshold_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngoblin_threshold = 9\n")
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    result = run_goblin(pytester, "w")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*threshold: 900%*"])


def test_workload_threshold_wins_over_the_command_line(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED + "goblin:\n  threshold: 9\n")
    result = run_goblin(pytester, "w", "--goblin-threshold", "0.05")
    result.assert_outcomes(passed=1)


def test_bad_threshold_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    result = run_goblin(pytester, "w", "--goblin-threshold", "ten")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--goblin-threshold must be a number, got 'ten'*"])


def test_ignored_rules_are_not_applied(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED + "goblin:\n  ignore: [bf16-mixed-precision]\n")
    result = run_goblin(pytester, "w", "--goblin-threshold", "0.01")
    result.stdout.fnmatch_lines(["*attention_impl: eager -> sdpa*[[]sdpa-attention[]]"])
    result.stdout.no_fnmatch_line("*precision: fp32 -> bf16*")


def test_unknown_ignored_rule_id_errors_with_a_suggestion(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED + "goblin:\n  ignore: [flash-atention]\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*w/bad.goblin.yaml: field 'goblin.ignore': unknown rule id 'flash-atention' "
            "(did you mean 'flash-attention'?)*"
        ]
    )


def test_broken_workload_errors_without_stopping_the_others(pytester: pytest.Pytester) -> None:
    write(pytester, "w/a.goblin.yaml", TUNED)
    write(pytester, "w/b.goblin.yaml", "model: llama-3-8b\nprecision: [unclosed\n")
    write(pytester, "w/c.goblin.yaml", TUNED.replace("llama-tuned", "third"))
    result = run_goblin(pytester, "w")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*w/b.goblin.yaml: invalid YAML at line 3*"])


@pytest.mark.parametrize(
    "text",
    ["model: llama-3-8b\nprecision: [unclosed\n", "model: nope\n"],
    ids=["unreadable", "invalid"],
)
def test_a_broken_file_has_the_same_relative_json_path_as_a_good_one(
    pytester: pytest.Pytester,
    text: str,
) -> None:
    write(pytester, "w/good.goblin.yaml", TUNED)
    write(pytester, "w/broken.goblin.yaml", text)
    run_goblin(pytester, "w", "--goblin-json", "report.json")
    doc = json.loads((pytester.path / "report.json").read_text())
    paths = {w["outcome"]: w["path"] for w in doc["workloads"]}
    assert paths == {"passed": "w/good.goblin.yaml", "error": "w/broken.goblin.yaml"}


def test_wrong_type_errors_name_the_file_and_the_field(pytester: pytest.Pytester) -> None:
    write(pytester, "w/a.goblin.yaml", TUNED.replace("batch_size: 4", "batch_size: four"))
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*w/a.goblin.yaml: field 'batch_size': *integer*'four'*"])


def test_unknown_keys_are_errors_that_name_the_key(pytester: pytest.Pytester) -> None:
    write(pytester, "w/a.goblin.yaml", TUNED + "batch_szie: 8\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*w/a.goblin.yaml: field 'batch_szie': unknown key*"])


def test_unknown_model_preset_error_lists_the_presets(pytester: pytest.Pytester) -> None:
    write(pytester, "w/a.goblin.yaml", TUNED.replace("llama-3-8b", "llama-9"))
    result = run_goblin(pytester, "w")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*field 'model': *unknown model preset 'llama-9'*llama-3-8b*"])


def test_json_report_carries_the_documented_fields(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    write(pytester, "w/good.goblin.yaml", TUNED)
    write(pytester, "w/broken.goblin.yaml", "model: nope\n")
    run_goblin(pytester, "w", "--goblin-json", "out/report.json")
    doc = json.loads((pytester.path / "out/report.json").read_text())
    assert doc["schema_version"] == 1
    assert doc["device"]["kind"] == "simulated"
    assert doc["device"]["name"] == "AMD Instinct MI300X"
    assert doc["backend"] == "planner"
    assert doc["threshold"] == 0.10
    by_name = {w["name"]: w for w in doc["workloads"]}
    assert {w["outcome"] for w in doc["workloads"]} == {"failed", "passed", "error"}
    bad = by_name["llama-mistuned"]
    for key in (
        "nodeid",
        "path",
        "name",
        "format",
        "outcome",
        "config",
        "baseline",
        "patched",
        "speedup",
        "speedup_ci",
        "projected",
        "rules",
        "patch",
        "error",
    ):
        assert key in bad, key
    assert bad["nodeid"] == "w/bad.goblin.yaml::llama-mistuned"
    assert bad["format"] == "goblin"
    assert bad["projected"] is True
    assert bad["speedup"] > 1.1
    assert bad["patched"]["tokens_per_sec"] / bad["baseline"]["tokens_per_sec"] == pytest.approx(
        bad["speedup"], rel=1e-3
    )
    assert all(r["citation"][0].startswith("https://") for r in bad["rules"])
    assert bad["patch"]["diff"].startswith("--- a/w/bad.goblin.yaml")
    assert {c["field"] for c in bad["patch"]["changes"]} >= {"precision", "attention_impl"}
    assert by_name["llama-tuned"]["patch"] is None
    assert by_name["broken"]["error"].startswith("w/broken.goblin.yaml")


def test_json_report_is_written_atomically_leaving_no_temp_files(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/good.goblin.yaml", TUNED)
    run_goblin(pytester, "w", "--goblin-json", "report.json")
    assert sorted(p.name for p in pytester.path.glob("*report.json*")) == ["report.json"]


def test_an_unknown_measuring_device_is_a_usage_error_listing_the_forms(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/good.goblin.yaml", TUNED)
    result = pytester.runpytest("--goblin", "--goblin-device", "tpu", "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--goblin-device*'tpu'*auto, cpu, cuda, cuda:N, rocm*"])


def test_unknown_fake_device_is_a_usage_error_listing_devices(pytester: pytest.Pytester) -> None:
    result = run_goblin(pytester, "--goblin-fake-device", "mi999")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mi999*mi300x*"])


def test_fake_device_selects_the_simulated_device(pytester: pytest.Pytester) -> None:
    write(pytester, "w/good.goblin.yaml", TUNED)
    result = run_goblin(pytester, "w", "--goblin-fake-device", "h100")
    result.stdout.fnmatch_lines(["device: NVIDIA H100*(simulated)*"])


def test_workload_device_setting_overrides_the_session_device(pytester: pytest.Pytester) -> None:
    write(pytester, "w/a.goblin.yaml", TUNED + "goblin:\n  device: h100\n")
    run_goblin(pytester, "w", "--goblin-json", "r.json")
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["workloads"][0]["device"]["name"] == "NVIDIA H100 SXM"
    assert doc["device"]["name"] == "AMD Instinct MI300X"


def test_a_baseline_that_fits_no_way_errors_with_the_memory_breakdown_and_what_was_tried(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/big.goblin.yaml", "model: llama-3.1-70b\nprecision: bf16\n")
    result = run_goblin(pytester, "w")
    result.assert_outcomes(failed=1)  # pytest's count; the goblin summary says ERROR
    result.stdout.fnmatch_lines(
        [
            "w/big.goblin.yaml: does not fit: projected to need * GB of 192 GB on AMD "
            "Instinct MI300X (weights *), assuming one device*; even with gradient_checkpointing "
            "True, batch_size 1, grad_accum_steps 8 it needs * GB: a full fine-tune this size "
            "needs LoRA*more devices (a launch over several devices*is described in the sidecar*"
        ]
    )


def test_goblin_audit_fixture_returns_the_report(pytester: pytest.Pytester) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    pytester.makepyfile(
        test_mine="""
        def test_audit(goblin_audit):
            report = goblin_audit("w/bad.goblin.yaml")
            assert report.projected
            assert report.speedup > 1.1
            assert "bf16-mixed-precision" in report.patch.rule_ids
    """
    )
    result = pytester.runpytest("--goblin-fake", "-p", "no:cacheprovider", "test_mine.py")
    result.assert_outcomes(passed=1)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_patch_applies_with_git_apply_and_gives_a_passing_workload(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/bad.goblin.yaml", MISTUNED)
    run_goblin(pytester, "w", "--goblin-json", "r.json")
    diff = json.loads((pytester.path / "r.json").read_text())["workloads"][0]["patch"]["diff"]
    (pytester.path / "fix.diff").write_text(diff)
    subprocess.run(["git", "init", "-q"], cwd=pytester.path, check=True)
    subprocess.run(["git", "apply", "fix.diff"], cwd=pytester.path, check=True)
    result = run_goblin(pytester, "w")
    result.assert_outcomes(passed=1)
