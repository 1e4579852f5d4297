"""The search's candidates as each report shows them: the best three, the chosen one among
them, what each changes beyond the changes they share, and every candidate in JSON."""

from __future__ import annotations

import json

import pytest

from helpers.sample_results import audited, run_info
from helpers.workloads import QWEN_LORA_CHECKPOINTED_YAML, WorkloadFactory
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.kb.loader import load_kb
from pytest_goblin.report import candidates_text, html, json_report, markdown
from pytest_goblin.report.terminal import failure_text, rules_listing
from pytest_goblin.schemas import SearchCandidate, WorkloadResult


@pytest.fixture
def searched(workload: WorkloadFactory, context: AuditContext) -> WorkloadResult:
    result = audited(workload(QWEN_LORA_CHECKPOINTED_YAML), context)
    assert result.outcome == "failed" and len(result.candidates) >= 3
    return result


def test_the_failure_text_shows_the_best_candidates_and_marks_the_chosen_one(
    searched: WorkloadResult,
) -> None:
    text = failure_text(searched)
    block = text.split("candidates (", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[0] == f"best 3 of {len(searched.candidates)} candidates):"
    assert block[1].startswith("  all of them: precision=bf16, attention_impl=flash")
    assert block[2].startswith(f"  {searched.speedup:.2f}× projected, peak ")
    assert block[2].endswith(", chosen: gradient_checkpointing=false")
    assert "batch_size=" in "\n".join(block[3:])


def test_markdown_and_html_show_the_same_candidates(searched: WorkloadResult) -> None:
    page = markdown.render([searched], run_info(searched))
    assert f"**Candidates** ({candidates_text.heading(searched)})" in page
    assert "| speedup | changes |" in page and "`gradient_checkpointing=false`" in page
    document = html.render([searched], run_info(searched))
    assert "<h4>Candidates (best 3 of" in document
    assert "<code>gradient_checkpointing=false</code>" in document


def test_json_carries_every_candidate(searched: WorkloadResult) -> None:
    document = json_report.build([searched], searched.device, "planner", 0.10, fake=True)
    [workload] = json.loads(json.dumps(document))["workloads"]
    assert len(workload["candidates"]) == len(searched.candidates)
    assert sum(c["chosen"] for c in workload["candidates"]) == 1
    first = workload["candidates"][0]
    assert set(first) == {"changes", "speedup", "projected", "peak_memory_gb", "chosen"}


def test_the_chosen_candidate_is_shown_even_when_it_ranks_below_the_top_three(
    searched: WorkloadResult,
) -> None:
    slow = SearchCandidate(changes=[], speedup=1.01, projected=False, chosen=True)
    others = [c.model_copy(update={"chosen": False}) for c in searched.candidates]
    result = searched.model_copy(update={"candidates": [*others, slow]})
    shown = candidates_text.shown(result)
    assert len(shown) == 3 and shown[-1] is slow


def test_a_single_candidate_is_not_listed(searched: WorkloadResult) -> None:
    result = searched.model_copy(update={"candidates": searched.candidates[:1]})
    assert candidates_text.lines(result) == []
    assert "candidates (" not in failure_text(result)


def test_the_verbose_rules_listing_shows_guards_searches_and_facts() -> None:
    listing = rules_listing(load_kb(), verbose=True)
    block = listing.split("\nlarger-micro-batch\n", 1)[1].split("\n\n", 1)[0]
    assert "grad_accum_steps / k" in block and "fits:" in block and "85%" in block
    facts = listing.split("facts a condition can read", 1)[1]
    for path in ("device.memory_gb", "profile.memory_fraction", "profile.buckets.data_wait"):
        assert path in facts
