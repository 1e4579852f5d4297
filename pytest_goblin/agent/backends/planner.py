"""The planner: a deterministic backend that plays the canonical audit trajectory.

It is the reference policy and the default when no API key is set. It goes
through the same loop and tools as an LLM would — it is a Backend, not a
bypass — and decides each step only from the tool results it is given:

parse_config → profile_run → (query_rocm_kb → propose_patch, repeated on the patched
config while new rules apply) → benchmark (baseline) → benchmark (patched) → compare_runs.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_goblin.agent.backends import AgentTurn, ToolCall

PROFILE_STEPS = 10
BENCHMARK_STEPS = 50
MAX_PATCH_ROUNDS = 3


class PlannerBackend:
    name = "planner"

    def __init__(self, system_prompt: str = "") -> None:
        self._file_path: str | None = None
        self._results: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._pending: list[ToolCall] = []
        self._calls = 0

    def add_user_message(self, text: str) -> None:
        self._file_path = text.split(":", 1)[1].strip() if ":" in text else text.strip()

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        key = tool_call_id.split(":", 1)[1]
        if is_error:
            self._errors[key] = content
        else:
            self._results[key] = json.loads(content)

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        text, call = self._plan()
        if call is None:
            return AgentTurn(text_blocks=[text], stop_reason="end_turn")
        return AgentTurn(text_blocks=[text], tool_calls=[call], stop_reason="tool_use")

    def _call(self, key: str, name: str, **args: Any) -> ToolCall:
        self._calls += 1
        return ToolCall(id=f"planner-{self._calls}:{key}", name=name, input=args)

    def _plan(self) -> tuple[str, ToolCall | None]:
        """The next step, decided from the results so far."""
        r, err = self._results, self._errors
        if "parse" not in r:
            if "parse" in err:
                return f"Cannot read the workload: {err['parse']}", None
            return "Reading the workload file.", self._call(
                "parse", "parse_config", file_path=self._file_path
            )
        config_id = r["parse"]["config_id"]
        if "profile" not in r and "profile" not in err:
            return "Profiling a short run to see where the step time goes.", self._call(
                "profile", "profile_run", config_id=config_id, steps=PROFILE_STEPS
            )
        if "profile" in err:
            return f"The workload cannot run as configured: {err['profile']}", None
        patch, round_text, call = self._patch_rounds(config_id, r["profile"].get("symptoms", []))
        if call is not None:
            return round_text, call
        if "baseline" not in r:
            if "baseline" in err:
                return f"The baseline could not be benchmarked: {err['baseline']}", None
            return "Benchmarking the baseline config.", self._call(
                "baseline", "benchmark", config_id=config_id, steps=BENCHMARK_STEPS
            )
        if patch and "patched" not in r and "patched" not in err:
            return "Benchmarking the patched config.", self._call(
                "patched", "benchmark", patch_id=patch["patch_id"], steps=BENCHMARK_STEPS
            )
        if "compare" not in r and "compare" not in err:
            return self._compare(r, err, patch)
        if "compare" in err:
            return f"Comparing the runs failed: {err['compare']}", None
        return r["compare"]["summary_line"], None

    def _patch_rounds(
        self, config_id: str, symptoms: list[str]
    ) -> tuple[dict[str, Any] | None, str, ToolCall | None]:
        """Query and patch until the patched config matches no further rule.

        Each round queries the knowledge base with the config the previous patch
        produced, so a rule that only applies after another (flash attention
        needs bf16) joins the patch. Returns the latest patch, and the next call
        while rounds remain.
        """
        r, err = self._results, self._errors
        patch = None
        for n in range(1, MAX_PATCH_ROUNDS + 1):
            kb_key, patch_key = f"kb{n}", f"patch{n}"
            if kb_key in err:
                return patch, "", None
            if kb_key not in r:
                text = (
                    "Looking up tuning rules for this config and its symptoms."
                    if n == 1
                    else "Checking whether the patched config unlocks further rules."
                )
                return (
                    patch,
                    text,
                    self._call(
                        kb_key,
                        "query_rocm_kb",
                        symptoms=symptoms or ["training step"],
                        config_id=config_id,
                    ),
                )
            rule_ids = [
                rule["id"]
                for rule in r[kb_key].get("rules", [])
                if rule.get("kind") == "patch" and rule.get("matches_config")
            ]
            if not rule_ids or patch_key in err:
                return patch, "", None
            if patch_key not in r:
                return (
                    patch,
                    f"Applying {', '.join(rule_ids)}.",
                    self._call(patch_key, "propose_patch", config_id=config_id, rule_ids=rule_ids),
                )
            patch = r[patch_key]
            config_id = patch["config_id"]
        return patch, "", None

    def _compare(
        self, r: dict[str, Any], err: dict[str, str], patch: dict[str, Any] | None
    ) -> tuple[str, ToolCall]:
        baseline = r["baseline"]["metrics_id"]
        name = r["parse"]["name"]
        if "patched" in r and patch is not None:
            return "Comparing baseline and patched runs.", self._call(
                "compare",
                "compare_runs",
                workload_name=name,
                before=baseline,
                after=r["patched"]["metrics_id"],
                patch=patch["patch_id"],
            )
        notes = [f"{key} failed: {value}" for key, value in err.items() if key.startswith("patch")]
        text = "No applicable patch could be measured; reporting the baseline."
        return text, self._call(
            "compare",
            "compare_runs",
            workload_name=name,
            before=baseline,
            after=baseline,
            patch=None,
            notes=notes,
        )
