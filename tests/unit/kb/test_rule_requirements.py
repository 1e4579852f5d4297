"""A rule's ``requires`` is checked against the versions the audited device reports."""

from __future__ import annotations

from pytest_goblin.agent.state import AuditContext, AuditState, known_versions
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig

FULL_BF16_8B = WorkloadConfig(model="llama-3-8b", finetune="full", precision="bf16")


def info(**fields: str) -> DeviceInfo:
    return DeviceInfo(kind="rocm", name="GPU", platform="rocm-instinct", **fields)


def test_versions_keep_the_release_part_of_what_torch_reports() -> None:
    assert known_versions(
        info(torch_version="2.5.1+rocm6.2", rocm_version="6.2.41133-dd7f95766", arch="gfx942")
    ) == {"torch": "2.5.1", "rocm": "6.2.41133"}


def test_an_nvidia_architecture_gives_the_compute_capability() -> None:
    assert known_versions(info(arch="sm_90", cuda_version="12.4")) == {
        "cuda": "12.4",
        "compute_capability": "9.0",
    }


def test_what_the_device_does_not_report_stays_unknown() -> None:
    assert known_versions(SimulatedDevice("mi300x").info) == {}


def skipped_reasons(device: str, kb: KnowledgeBase) -> dict[str, str]:
    simulated = SimulatedDevice(device)
    state = AuditState(AuditContext(runner=simulated, projector=simulated, kb=kb))
    return dict(state.match(FULL_BF16_8B).skipped)


def test_a_rule_the_devices_compute_capability_rules_out_is_skipped_with_why(
    kb: KnowledgeBase,
) -> None:
    reasons = skipped_reasons("a100", kb)
    assert reasons["fp8-linear-layers"] == "requires compute_capability>=8.9 (have 8.0)"


def test_the_same_rule_applies_where_the_capability_is_met(kb: KnowledgeBase) -> None:
    simulated = SimulatedDevice("h100")
    state = AuditState(AuditContext(runner=simulated, projector=simulated, kb=kb))
    assert "fp8-linear-layers" in {rule.id for rule in state.match(FULL_BF16_8B).applicable}
