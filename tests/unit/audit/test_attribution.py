"""--goblin-attribution: what each change of a patch contributes, leave-one-out."""

from __future__ import annotations

import json
import math
import random

import pytest

from helpers.dict_store import DictStore
from helpers.workloads import MISTUNED_YAML, MeasuredDevice, WorkloadFactory
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.attribution import attribute, with_attribution
from pytest_goblin.audit.cache import AuditCache
from pytest_goblin.audit.run import audit_workload, confirm_report
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.report.attribution_text import share_text, summary
from pytest_goblin.runner.device_session import DeviceSession, SimulatedDevice
from pytest_goblin.schemas import ChangeAttribution, Report, RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

SINGLE_CHANGE_YAML = """\
name: only-pin-memory
model: qwen2.5-0.5b
precision: bf16
attention_impl: flash
optimizer: adamw_torch_fused
dataloader_workers: 4
dataloader_persistent_workers: true
dataloader_pin_memory: false
"""


class Recording:
    """A runner that records every config it is asked to run, then delegates."""

    def __init__(self, inner: SimulatedDevice | MeasuredDevice) -> None:
        self.inner = inner
        self.info = inner.info
        self.configs: list[WorkloadConfig] = []

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.configs.append(config)
        return self.inner.run(config, steps)


def projected_report(workload: Workload, context: AuditContext) -> Report:
    outcome = audit(workload, context)
    assert outcome.report is not None and outcome.report.patch is not None
    return outcome.report


def by_field(entries: list[ChangeAttribution]) -> dict[str, ChangeAttribution]:
    return {entry.field: entry for entry in entries}


def test_precision_dominates_a_mistuned_fp32_eager_unfused_config(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context)
    entries = by_field(attribute(report, mistuned.config, device, kb, 0.05))
    assert set(entries) == {change.field for change in report.patch.changes}
    shares = {field: entry.contribution for field, entry in entries.items()}
    assert max(shares, key=lambda field: shares[field] or 0.0) == "precision"
    assert shares["precision"] > 0.9
    assert shares["optimizer"] is not None and abs(shares["optimizer"]) < 0.05
    assert all(entry.projected for entry in entries.values())


def test_the_figure_is_the_patch_without_the_change_over_the_baseline(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context)
    entry = by_field(attribute(report, mistuned.config, device, kb, 0.05))["attention_impl"]
    rest = [c for c in report.patch.changes if c.field != "attention_impl"]
    config = mistuned.config.model_copy(update={c.field: c.new for c in rest})
    expected = device.run(config, 50).tokens_per_sec / report.before.tokens_per_sec
    assert entry.speedup_without == pytest.approx(expected, rel=1e-3)
    share = math.log(report.speedup / expected) / math.log(report.speedup)
    assert entry.contribution == pytest.approx(share, rel=1e-3)


def test_a_change_another_rule_needs_is_not_separable_from_it(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context)
    entries = by_field(attribute(report, mistuned.config, device, kb, 0.05))
    workers = entries["dataloader_workers"]
    assert workers.together_with == ["dataloader_persistent_workers"]
    assert workers.note.startswith(
        "not separable from dataloader_persistent_workers "
        "(persistent-workers needs dataloader_workers > 0)"
    )
    assert workers.speedup_without is not None
    assert entries["precision"].together_with == ["attention_impl"]
    assert entries["dataloader_persistent_workers"].together_with == []


def test_a_single_change_patch_runs_nothing_extra_and_is_the_whole_speedup(
    workload: WorkloadFactory,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    single = workload(SINGLE_CHANGE_YAML, filename="single.goblin.yaml")
    report = projected_report(single, context)
    assert len(report.patch.changes) == 1
    runner = Recording(device)
    [entry] = attribute(report, single.config, runner, kb, 0.05)
    assert runner.configs == []
    assert entry.contribution == 1.0
    assert entry.speedup_without == 1.0
    assert entry.note == "the patch's only change: the whole speedup"


def test_a_rest_of_the_patch_the_device_cannot_run_has_no_figure_and_says_why(
    mistuned: Workload,
    measured_context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    class UnfusedDoesNotFit(MeasuredDevice):
        def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
            if config.precision == "bf16" and config.optimizer == "adamw_torch":
                raise OutOfMemory("oom: 80 GiB asked, 64 GiB free")
            return super().run(config, steps)

    report = projected_report(mistuned, measured_context)
    entries = by_field(attribute(report, mistuned.config, UnfusedDoesNotFit(), kb, 0.05))
    optimizer = entries["optimizer"]
    assert optimizer.speedup_without is None and optimizer.contribution is None
    assert optimizer.note == (
        "not separable: without it the patch does not run here (oom: 80 GiB asked, 64 GiB free)"
    )
    assert share_text(optimizer) == "not separable"
    assert entries["attention_impl"].speedup_without is not None


def test_measured_variants_are_measured_beside_a_fresh_baseline_in_alternating_order(
    mistuned: Workload,
    measured_context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    outcome = audit(mistuned, measured_context)
    assert outcome.report is not None
    report = confirm_report(
        outcome.report, measured_context.runner, mistuned, GoblinSettings(max_repeats=2)
    )
    assert not report.projected
    runner = Recording(MeasuredDevice())
    attributed = with_attribution(report, mistuned.config, runner, kb, 0.05)
    changes = report.patch.changes
    assert len(runner.configs) == 2 * len(changes)
    is_baseline = [config == mistuned.config for config in runner.configs]
    assert is_baseline == [True, False, False, True] * 2 + [True, False]
    assert [entry.field for entry in attributed.attribution] == [c.field for c in changes]
    assert all(not entry.projected for entry in attributed.attribution)
    assert by_field(attributed.attribution)["precision"].contribution > 0.9


def test_a_measured_change_whose_removal_stays_within_the_noise_is_marked_so(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    class Noisy(MeasuredDevice):
        """Five windows per run, scattered 3% around the analytic model's figure."""

        rng = random.Random(11)

        def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
            metrics = super().run(config, steps)
            level = metrics.tokens_per_sec
            return metrics.model_copy(
                update={"samples": [level * self.rng.lognormvariate(0, 0.03) for _ in range(5)]}
            )

    report = projected_report(mistuned, context).model_copy(update={"projected": False})
    entries = by_field(attribute(report, mistuned.config, Noisy(), kb, 0.05))
    assert entries["optimizer"].note.startswith("within the noise: without it ")
    assert "within the noise" not in entries["precision"].note
    assert "within the noise" not in entries["attention_impl"].note


def test_a_rejected_patch_has_nothing_to_attribute(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context).model_copy(
        update={"rejected": "patched run produced a non-finite loss"}
    )
    assert with_attribution(report, mistuned.config, device, kb, 0.05).attribution == []


def test_a_patch_whose_changes_do_not_rebuild_its_config_is_not_attributed(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context)
    assert report.patch is not None
    odd = report.patch.model_copy(
        update={"new_config": report.patch.new_config.model_copy(update={"batch_size": 64})}
    )
    runner = Recording(device)
    entries = attribute(report.model_copy(update={"patch": odd}), mistuned.config, runner, kb, 0.05)
    assert runner.configs == []
    assert all(e.speedup_without is None and e.note.startswith("not measured") for e in entries)


def test_a_patch_with_no_gain_has_no_shares_to_give(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
    device: SimulatedDevice,
) -> None:
    report = projected_report(mistuned, context).model_copy(update={"speedup": 1.002})
    entries = attribute(report, mistuned.config, device, kb, 0.05)
    assert all(e.contribution is None for e in entries)
    assert all("too close to 1×" in e.note for e in entries)
    assert summary(entries) is None


def test_attribution_is_absent_without_the_option(mistuned: Workload, kb: KnowledgeBase) -> None:
    session = DeviceSession("mi300x")
    plain = audit_workload(mistuned, session, GoblinSettings(fake=True, backend="planner"), kb)
    asked = audit_workload(
        mistuned, session, GoblinSettings(fake=True, backend="planner", attribution=True), kb
    )
    assert plain.report is not None and plain.report.attribution == []
    assert asked.report is not None and len(asked.report.attribution) == 5


def test_a_cached_audit_is_attributed_afresh_and_the_cache_keeps_the_plain_report(
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    store, session = DictStore(), DeviceSession("mi300x")
    settings = GoblinSettings(fake=True, backend="planner", attribution=True)
    audit_workload(mistuned, session, settings, kb, cache=AuditCache(store))
    again = audit_workload(mistuned, session, settings, kb, cache=AuditCache(store))
    assert again.cached and again.report is not None and len(again.report.attribution) == 5
    [entry] = store.data.values()
    assert entry["report"]["attribution"] == []


def entry(contribution: float | None, together: list[str] | None = None) -> ChangeAttribution:
    return ChangeAttribution(
        field=f"f{contribution}",
        old=0,
        new=1,
        rule_id="r",
        speedup_without=1.5,
        contribution=contribution,
        projected=True,
        together_with=together or [],
    )


def test_shares_that_add_up_to_the_whole_read_as_independent() -> None:
    text = summary([entry(0.62), entry(0.41)])
    assert text == "The shares add up to 103% of the speedup: the changes act independently."


def test_shares_far_from_the_whole_are_called_interacting() -> None:
    text = summary([entry(0.3), entry(0.3)])
    assert text is not None and text.startswith(
        "The shares add up to 60% of the speedup, not 100%: the changes interact"
    )


def test_shares_of_changes_left_out_together_are_said_to_overlap() -> None:
    text = summary([entry(1.0, ["attention_impl"]), entry(0.08)])
    assert text is not None and "they overlap" in text


def test_a_share_that_rounds_to_nothing_is_not_negative() -> None:
    assert share_text(entry(-0.0002)) == "0% of the gain (1.50× without it)"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with the mistuned workload, run in fake mode with a JSON report."""
    (pytester.path / "workloads").mkdir()
    (pytester.path / "workloads/a.goblin.yaml").write_text(MISTUNED_YAML)
    return pytester


FAKE = ("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-json=report.json")


def test_the_option_reaches_the_failure_text_and_the_json_markdown_and_html_reports(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest(
        *FAKE,
        "--goblin-attribution",
        "--goblin-md=summary.md",
        "--goblin-html=report.html",
        "workloads",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  precision: fp32 -> bf16  ?bf16-mixed-precision?  *% of the gain (*× without it and "
            "attention_impl)",
            "attribution (projected, leave-one-out):",
        ]
    )
    [workload] = json.loads((project.path / "report.json").read_text())["workloads"]
    assert [e["field"] for e in workload["attribution"]] == [
        "precision",
        "attention_impl",
        "optimizer",
        "dataloader_workers",
        "dataloader_persistent_workers",
    ]
    assert all(e["projected"] for e in workload["attribution"])
    markdown = (project.path / "summary.md").read_text()
    assert "**Attribution** (projected, leave-one-out)" in markdown
    assert "| change | rule | share | note |" in markdown
    page = (project.path / "report.html").read_text()
    assert "<h4>Attribution (projected, leave-one-out)</h4>" in page
    assert "<th>share</th>" in page


def test_the_ini_key_turns_attribution_on_and_output_is_unchanged_without_it(
    project: pytest.Pytester,
) -> None:
    plain = project.runpytest(*FAKE, "workloads")
    assert "of the gain" not in plain.stdout.str()
    assert "attribution (projected" not in plain.stdout.str()
    assert (
        json.loads((project.path / "report.json").read_text())["workloads"][0]["attribution"] == []
    )
    project.makeini("[pytest]\ngoblin_attribution = true\n")
    project.runpytest(*FAKE, "workloads").stdout.fnmatch_lines(
        ["attribution (projected, leave-one-out):"]
    )
