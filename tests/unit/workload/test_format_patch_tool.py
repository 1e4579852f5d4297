"""propose_patch on other formats: what the file cannot express is neither written nor measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.format_support import load
from pytest_goblin.agent import tools
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext, AuditState

TORCHTUNE = "torchtune/llama32_1b_full_single_device.yaml"


def call(state: AuditState, name: str, **args: Any) -> tools.ToolResult:
    return tools.call(state, name, args)


@pytest.fixture
def torchtune_state(tmp_path: Path, context: AuditContext) -> AuditState:
    state = AuditState(context=context, workload=load(tmp_path, TORCHTUNE))
    assert call(state, "parse_config", file_path=TORCHTUNE).ok
    return state


def test_parse_config_gives_the_format_and_where_each_field_came_from(
    torchtune_state: AuditState,
) -> None:
    result = call(torchtune_state, "parse_config", file_path=TORCHTUNE).result
    assert result["format"] == "torchtune"
    assert result["sources"]["precision"] == "dtype"


def test_an_unexpressible_change_is_left_out_of_the_patch_and_its_config(
    torchtune_state: AuditState,
) -> None:
    result = call(
        torchtune_state,
        "propose_patch",
        config_id="cfg-1",
        rule_ids=["bf16-mixed-precision", "dataloader-workers"],
    ).result
    assert [c["field"] for c in result["changes"]] == ["precision"]
    new_config = torchtune_state.configs[result["config_id"]]
    assert (new_config.precision, new_config.dataloader_workers) == ("bf16", 0)
    assert "+dtype: bf16" in result["diff"].splitlines()
    assert "dataloader_num_workers" not in result["diff"]


def test_the_left_out_change_is_noted_and_its_rule_skipped_with_the_reason(
    torchtune_state: AuditState,
) -> None:
    result = call(
        torchtune_state,
        "propose_patch",
        config_id="cfg-1",
        rule_ids=["bf16-mixed-precision", "dataloader-workers"],
    ).result
    (note,) = result["notes"]
    assert note.startswith(
        "left out dataloader_workers 0 -> 4 [dataloader-workers]: "
        "not expressible in this torchtune file"
    )
    skipped = {s["rule_id"]: s["reason"] for s in result["skipped"]}
    assert "DataLoader" in skipped["dataloader-workers"]
    assert result["rule_ids"] == ["bf16-mixed-precision"]


def test_a_patch_of_only_unexpressible_changes_is_refused(torchtune_state: AuditState) -> None:
    result = call(
        torchtune_state, "propose_patch", config_id="cfg-1", rule_ids=["dataloader-workers"]
    )
    assert not result.ok
    assert "no change to propose that torchtune/llama32_1b_full_single_device.yaml can express" in (
        result.error or ""
    )


def test_the_report_carries_the_note_and_measures_only_the_written_patch(
    tmp_path: Path, context: AuditContext
) -> None:
    outcome = audit(load(tmp_path, TORCHTUNE), context)
    assert outcome.report is not None and outcome.report.patch is not None
    fields = {c.field for c in outcome.report.patch.changes}
    assert "precision" in fields
    assert not fields & {"dataloader_workers", "dataloader_pin_memory"}
    assert outcome.report.patch.new_config.dataloader_workers == 0
    assert any("left out dataloader_workers" in note for note in outcome.report.notes)
