"""Specification of the JUnit properties: ``--junitxml`` carries each workload's numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from helpers.sample_results import audited, errored
from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.report.junit import properties
from pytest_goblin.workload.read import Workload


def run_with_junit(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, str]]:
    """Run the plugin on a mistuned, a tuned and a broken workload; properties per test name."""
    for name, text in (("a", MISTUNED_YAML), ("b", TUNED_YAML), ("c", "model: [unclosed\n")):
        path = pytester.path / "workloads" / f"{name}.goblin.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    xml_path = pytester.path / "junit.xml"
    pytester.runpytest(
        "--goblin",
        "--goblin-fake",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml_path}",
        *args,
        "workloads",
    )
    cases = ET.parse(xml_path).getroot().iter("testcase")
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in cases
    }


def test_a_failed_workload_carries_throughput_speedup_reason_and_rules(
    pytester: pytest.Pytester,
) -> None:
    props = run_with_junit(pytester)["llama-mistuned"]
    assert props["goblin_outcome"] == "failed"
    assert (
        float(props["goblin_patched_tokens_per_sec"])
        > float(props["goblin_baseline_tokens_per_sec"])
        > 0
    )
    assert float(props["goblin_speedup"]) > 1.1
    assert "faster" in props["goblin_reason"]
    assert "bf16-mixed-precision" in props["goblin_rules"].split(",")
    assert props["goblin_projected"] == "true"


def test_a_passed_workload_without_a_patch_has_no_patched_throughput(
    pytester: pytest.Pytester,
) -> None:
    props = run_with_junit(pytester)["llama-tuned"]
    assert props["goblin_outcome"] == "passed"
    assert "goblin_baseline_tokens_per_sec" in props
    assert "goblin_patched_tokens_per_sec" not in props and "goblin_rules" not in props


def test_a_workload_that_cannot_be_read_carries_its_error(pytester: pytest.Pytester) -> None:
    props = run_with_junit(pytester)["c"]
    assert props["goblin_outcome"] == "error"
    assert "invalid YAML" in props["goblin_error"]


def test_properties_reach_the_junit_file_from_xdist_workers(pytester: pytest.Pytester) -> None:
    props = run_with_junit(pytester, "-p", "xdist", "-n", "2")
    assert props["llama-mistuned"]["goblin_outcome"] == "failed"
    assert props["llama-tuned"]["goblin_outcome"] == "passed"


def test_the_speedup_ci_becomes_low_and_high_properties(
    mistuned: Workload,
    context: AuditContext,
) -> None:
    result = audited(mistuned, context).model_copy(update={"speedup_ci": (1.5, 1.75)})
    props = dict(properties(result))
    assert (props["goblin_speedup_ci_low"], props["goblin_speedup_ci_high"]) == ("1.5000", "1.7500")


def test_no_property_is_written_for_a_number_the_workload_does_not_have() -> None:
    names = [name for name, _ in properties(errored())]
    assert names == ["goblin_outcome", "goblin_reason", "goblin_error"]


def test_attribution_becomes_one_property_per_change_with_its_share(
    pytester: pytest.Pytester,
) -> None:
    cases = run_with_junit(pytester, "--goblin-attribution")
    shares = {
        name: value
        for name, value in cases["llama-mistuned"].items()
        if name.startswith("goblin_attribution_")
    }
    assert sorted(shares) == [
        "goblin_attribution_attention_impl",
        "goblin_attribution_dataloader_persistent_workers",
        "goblin_attribution_dataloader_workers",
        "goblin_attribution_optimizer",
        "goblin_attribution_precision",
    ]
    assert float(shares["goblin_attribution_precision"]) > 0.9
    assert not any(name.startswith("goblin_attribution_") for name in cases["llama-tuned"])


def test_no_attribution_property_is_written_without_the_option(
    pytester: pytest.Pytester,
) -> None:
    props = run_with_junit(pytester)["llama-mistuned"]
    assert not any(name.startswith("goblin_attribution_") for name in props)
