"""The knowledge base as a user meets it: ``--goblin-rules``, team rule packs and waivers."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from helpers.workloads import MISTUNED_YAML as MISTUNED
from pytest_goblin.kb import load_kb

BUILTIN_COUNT = len(load_kb())


def team_rule(**overrides: Any) -> dict[str, Any]:
    """A valid team advisory: point HF_HOME at local disk."""
    data: dict[str, Any] = {
        "id": "team-hf-home",
        "category": "env",
        "kind": "advisory",
        "platforms": ["rocm-instinct"],
        "when": {"env_vars.HF_HOME": {"exists": False}},
        "advice": "point HF_HOME at the node's local disk",
        "symptom": "Hub cache on the shared file system",
        "expected_impact": "cache reads from local disk",
        "citation": "https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables",
        "examples": {"matches": [{}], "not_matches": [{"env_vars": {"HF_HOME": "/nvme/hf"}}]},
    }
    data.update(overrides)
    return data


def write_pack(pytester: pytest.Pytester, relpath: str, *rules: dict[str, Any]) -> str:
    """Write a rule file; returns its path as messages show it (as given, relative)."""
    path = pytester.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"rules": list(rules)}, sort_keys=False), encoding="utf-8")
    return relpath


def rules(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin-rules", "-p", "no:cacheprovider", *args)


# --- --goblin-rules ----------------------------------------------------------------------


@pytest.fixture
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal wide enough for every column of the listing."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.usefixtures("wide_terminal")
def test_goblin_rules_lists_every_rule_grouped_by_category_and_exits_zero(
    pytester: pytest.Pytester,
) -> None:
    result = rules(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "precision (* rules)",
            "id*kind*platforms*speedup*cited from",
            "bf16-mixed-precision*patch*cuda*-*pytorch.org",
            "*rocm-instinct*huggingface.co",
            "attention (* rules)",
            "flash-attention*patch*rocm-instinct*",
            "optimizer (* rules)",
            "fused-adamw*patch*all*1.016–1.036×*github.com",
            f"{BUILTIN_COUNT} rules ({BUILTIN_COUNT} built-in, 0 user); -v: each rule in full, "
            "with its citations",
        ]
    )
    result.stdout.no_fnmatch_line("*when:*")


@pytest.mark.usefixtures("wide_terminal")
def test_the_listing_shows_citations_by_site(pytester: pytest.Pytester) -> None:
    """Full URLs made lines of 180 columns; on a wide terminal the sites fit in 90."""
    lines = rules(pytester).stdout.lines
    assert max(len(line) for line in lines) <= 90
    assert "left out to fit" not in "\n".join(lines)


@pytest.mark.parametrize(("columns", "left_out"), [(80, "cited from"), (60, "speedup, cited from")])
def test_the_listing_fits_an_80_column_terminal_leaving_out_columns_it_names(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, columns: int, left_out: str
) -> None:
    """On 80 columns the site column made lines of 90; it is left out in every section,
    and the footer says so (-v still shows each rule's citations)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    result = rules(pytester)
    assert result.ret == 0
    assert max(len(line) for line in result.stdout.lines) <= 80
    result.stdout.fnmatch_lines(
        [
            "id*kind*platforms*",
            "bf16-mixed-precision*patch*cuda*",
            f"(left out to fit {columns} columns: {left_out})",
        ]
    )
    result.stdout.no_fnmatch_line("*cited from*pytorch.org*")


def test_the_verbose_listing_wraps_at_the_terminal_width(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a citation's URL, never broken so it can be copied, may be wider."""
    monkeypatch.setenv("COLUMNS", "80")
    lines = rules(pytester, "-v").stdout.lines
    wide = [line for line in lines if len(line) > 80]
    assert wide and all(line.split()[-1].startswith("https://") for line in wide)


def test_every_listed_rule_carries_an_https_citation(pytester: pytest.Pytester) -> None:
    lines = rules(pytester, "-v").stdout.lines
    cited = [line for line in lines if line.startswith("    citation:  https://")]
    assert len(cited) == BUILTIN_COUNT >= 40


def test_verbose_listing_adds_condition_change_and_symptom(pytester: pytest.Pytester) -> None:
    result = rules(pytester, "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "bf16-mixed-precision",
            "    kind:      patch",
            "    platforms: cuda, rocm-instinct, rocm-radeon",
            '    when:      precision in ["fp32", "tf32"]',
            '    sets:      precision = "bf16"',
            "    symptom:   Training runs in FP32*",
            "    citation:  https://*",
        ]
    )
    result.stdout.fnmatch_lines(["numa-balancing-off", "*advice:    Turn off automatic NUMA*"])


@pytest.mark.usefixtures("wide_terminal")
def test_a_user_pack_from_the_command_line_is_listed_and_marked(
    pytester: pytest.Pytester,
) -> None:
    path = write_pack(pytester, "team-rules/site.yaml", team_rule())
    result = rules(pytester, "--goblin-kb", "team-rules")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "team-hf-home (user)*advisory*rocm-instinct*huggingface.co",
            f"{BUILTIN_COUNT + 1} rules ({BUILTIN_COUNT} built-in, 1 user)*",
            f"user rules from {path}: team-hf-home",
        ]
    )


def test_a_user_rule_that_replaces_a_builtin_says_so(pytester: pytest.Pytester) -> None:
    replacement = team_rule(
        id="dataloader-workers",
        category="data",
        kind="patch",
        platforms=["all"],
        advice=None,
        when={"dataloader_workers": 0},
        set={"dataloader_workers": 8},
        examples={"matches": [{}], "not_matches": [{"dataloader_workers": 8}]},
    )
    write_pack(pytester, "team-rules/site.yaml", replacement)
    result = rules(pytester, "--goblin-kb", "team-rules")
    result.stdout.fnmatch_lines(
        [
            "dataloader-workers (user, replaces built-in)*patch*all*",
            f"{BUILTIN_COUNT} rules ({BUILTIN_COUNT - 1} built-in, 1 user)*",
            "user rule dataloader-workers replaces the built-in rule",
        ]
    )


def test_ini_rule_directories_resolve_relative_to_the_ini_file(
    pytester: pytest.Pytester,
) -> None:
    write_pack(pytester, "project/rules/site.yaml", team_rule())
    (pytester.path / "project" / "pytest.ini").write_text("[pytest]\ngoblin_kb = rules\n")
    result = rules(pytester, "-c", "project/pytest.ini")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["team-hf-home (user)*"])


@pytest.mark.parametrize(
    ("overrides", "rule_label", "field"),
    [
        ({"category": "networking"}, "rule 'team-hf-home' (#1)", "category:"),
        (
            {"when": {"env_vars.HF_HOME": {"exist": False}}},
            "rule 'team-hf-home' (#1)",
            "unknown operator 'exist'",
        ),
        ({"citation": "HF hub docs"}, "rule 'team-hf-home' (#1)", "not an https URL"),
        (
            {"examples": {"matches": [{"env_vars": {"HF_HOME": "/nvme/hf"}}], "not_matches": [{}]}},
            "rule 'team-hf-home' (#1)",
            "examples.matches*does not match",
        ),
    ],
)
def test_an_invalid_user_rule_is_a_usage_error_naming_file_rule_and_field(
    pytester: pytest.Pytester, overrides: dict[str, Any], rule_label: str, field: str
) -> None:
    path = write_pack(pytester, "team-rules/site.yaml", team_rule(**overrides))
    result = rules(pytester, "--goblin-kb", "team-rules")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: goblin knowledge base: {path}: {rule_label}: *{field}*"])


def test_an_invalid_user_rule_stops_an_audit_run_too(pytester: pytest.Pytester) -> None:
    path = write_pack(pytester, "team-rules/site.yaml", team_rule(platforms=["rocm"]))
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "a.goblin.yaml").write_text(MISTUNED)
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-kb", "team-rules", "w"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{path}: rule 'team-hf-home' (#1): platforms*"])


# --- waivers ---------------------------------------------------------------------------


def run_with_json(pytester: pytest.Pytester, *args: str) -> dict[str, Any]:
    pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-json", "report.json", *args
    )
    return json.loads((pytester.path / "report.json").read_text())


def test_waived_rules_that_applied_are_listed_in_the_json_report(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "a.goblin.yaml").write_text(
        MISTUNED + "goblin:\n  ignore: [bf16-mixed-precision, tf32-cuda]\n"
    )
    (pytester.path / "w" / "b.goblin.yaml").write_text(MISTUNED.replace("llama-mistuned", "b"))
    doc = run_with_json(pytester, "w")
    by_name = {w["name"]: w for w in doc["workloads"]}
    assert by_name["llama-mistuned"]["waived"] == ["bf16-mixed-precision"]
    assert by_name["b"]["waived"] == []


def test_ini_waivers_are_listed_for_every_workload_they_touch(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\ngoblin_ignore = numa-balancing-off\n")
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "a.goblin.yaml").write_text(MISTUNED)
    (workload,) = run_with_json(pytester, "w")["workloads"]
    assert workload["waived"] == ["numa-balancing-off"]
    assert "numa-balancing-off" not in [a["id"] for a in workload["advisories"]]


def test_the_failure_text_lists_the_waived_rules(pytester: pytest.Pytester) -> None:
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "a.goblin.yaml").write_text(
        MISTUNED + "goblin:\n  ignore: [fused-adamw]\n"
    )
    result = pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "w")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*waived (goblin ignore): fused-adamw"])
