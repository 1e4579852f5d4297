"""The planner: a deterministic backend that plays the canonical audit trajectory.

It is the reference policy and the default when no API key is set. It goes
through the same loop and tools as an LLM would — it is a Backend, not a
bypass — and decides each step only from the tool results it is given:

parse_config → profile_run → (query_rocm_kb → propose_patch, repeated on the patched
config while new rules apply; a later round refused as a whole is proposed again without
the micro-batch rule) → the search: one propose_patch per other candidate the
matching rules allow (with and without each ``try_without`` rule, each admissible
micro-batch; checkpointing off at a smaller micro-batch where it fits only there), all in
one turn, then the rules that made room with a smaller micro-batch (or did not fit)
proposed on the candidate of the other rules, where they may fit at a larger one →
benchmark (baseline) → benchmark the candidate with the
best projected speedup (in measured mode the best ``measure_candidates``; the next one
when a benchmark fails) → compare_runs with the fastest measured candidate.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from pytest_goblin.agent.backends import AgentTurn, ToolCall

PROFILE_STEPS = 10
BENCHMARK_STEPS = 50
MAX_PATCH_ROUNDS = 3
MAX_CANDIDATES = 48
"""Cap on the search's proposals; the smallest micro-batches go first when it binds."""
MAX_BENCHMARK_FAILURES = 3
"""Candidates tried after failed benchmarks (out of memory, a crash) before giving up."""


class PlannerBackend:
    name = "planner"

    def __init__(self, system_prompt: str = "") -> None:
        self._file_path: str | None = None
        self._results: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._calls = 0
        self._searched = False
        self._followed = False
        self._roomy: tuple[str, list[str]] | None = None
        """The search's candidate of the unguarded rules alone (its key) and the rules
        that made room with a smaller micro-batch or did not fit on the audited config:
        proposed again on that candidate's config, where they may fit at a larger batch."""

    def add_user_message(self, text: str) -> None:
        self._file_path = text.split(":", 1)[1].strip() if ":" in text else text.strip()

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        key = tool_call_id.split(":", 1)[1]
        if is_error:
            self._errors[key] = content
        else:
            self._results[key] = json.loads(content)

    def add_tool_data(self, tool_call_id: str, name: str, data: Any) -> None:
        """A successful result as data, not JSON text: the planner runs in this process and
        sends nothing anywhere, so the loop hands it the result itself (read, never changed)
        rather than a redacted text for it to decode."""
        self._results[tool_call_id.split(":", 1)[1]] = data

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        text, calls = self._plan()
        if calls is None:
            return AgentTurn(text_blocks=[text], stop_reason="end_turn")
        batch = calls if isinstance(calls, list) else [calls]
        return AgentTurn(text_blocks=[text], tool_calls=batch, stop_reason="tool_use")

    def _call(self, key: str, name: str, **args: Any) -> ToolCall:
        self._calls += 1
        return ToolCall(id=f"planner-{self._calls}:{key}", name=name, input=args)

    def _plan(self) -> tuple[str, ToolCall | list[ToolCall] | None]:
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
        if "kb1" in r and not self._searched:
            calls = self._search_calls(config_id, patch)
            self._searched = True
            if calls:
                text = f"Comparing {len(calls) + 1} candidate patches with the analytic model."
                return text, calls
        if self._searched and not self._followed:
            self._followed = True
            follow = self._follow_call()
            if follow is not None:
                return "Trying the memory-hungry change on top of the others.", follow
        if "baseline" not in r:
            if "baseline" in err:
                return f"The baseline could not be benchmarked: {err['baseline']}", None
            return "Benchmarking the baseline config.", self._call(
                "baseline", "benchmark", config_id=config_id, steps=BENCHMARK_STEPS
            )
        bench = self._next_benchmark(patch)
        if bench is not None:
            return bench
        if "compare" not in r and "compare" not in err:
            return self._compare(r, err)
        if "compare" in err:
            return f"Comparing the runs failed: {err['compare']}", None
        return r["compare"]["summary_line"], None

    def _candidates(self, patch: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Every proposed candidate, best projected speedup first (the last round's patch
        first among equals)."""
        found = [patch] if patch else []
        found += [v for k, v in self._results.items() if k.startswith("alt")]
        return sorted(found, key=lambda p: -float(p.get("projected_speedup") or 0.0))

    def _search_calls(self, root_id: str, patch: dict[str, Any] | None) -> list[ToolCall]:
        """propose_patch calls for the candidates other than ``patch``: each subset of the
        ``try_without`` rules left out, each admissible micro-batch. Without a patch (the
        whole set was refused, e.g. it does not fit as a whole) the rules come from the
        first query and the whole set is not proposed again."""
        # later rounds query patched configs: the first round's view of a rule (its
        # micro-batch options on the audited config) wins
        lite = {
            rule["id"]: rule
            for key, result in reversed(self._results.items())
            if key.startswith("kb")
            for rule in result.get("rules", [])
            if rule.get("matches_config")
        }
        proposed = (
            patch.get("rule_ids", [])
            if patch
            else [rid for rid, rule in lite.items() if rule.get("kind") == "patch"]
        )
        rule_ids = [rid for rid in proposed if rid in lite]
        micro = next((rid for rid in rule_ids if "micro_batch_options" in lite[rid]), None)
        knobs = [rid for rid in rule_ids if lite[rid].get("try_without") and rid != micro]
        fixed = [rid for rid in rule_ids if rid not in knobs and rid != micro]
        if not knobs and micro is None:
            return []
        batches: list[int | None] = [None]
        if micro is not None:
            batches += lite[micro]["micro_batch_options"]
        # a rule that fits only at a smaller micro-batch (checkpointing off) is never
        # paired with a larger one: its own batch is what made it fit
        resized = {
            rid
            for rid in knobs
            if {"batch_size", "grad_accum_steps"} & set(lite[rid].get("transform", {}))
        }
        combos = []
        for keep in itertools.product((True, False), repeat=len(knobs)):
            for batch in batches:
                ids = fixed + [rid for rid, on in zip(knobs, keep, strict=True) if on]
                if batch is not None and resized & set(ids):
                    continue
                if batch is not None and micro is not None:
                    ids.append(micro)
                full = all(keep) and batch == batches[-1]
                # the round's patch is every rule with the largest micro-batch
                full = full or (not knobs and micro is None)
                if ids and not full:
                    combos.append((ids, batch))
        # when the cap binds, the largest micro-batches (the likeliest wins) stay
        combos.sort(key=lambda combo: -(combo[1] or 0))
        combos = combos[:MAX_CANDIDATES]
        misfits = [
            skip["rule_id"]
            for skip in self._results.get("kb1", {}).get("skipped", [])
            if str(skip.get("reason", "")).startswith("does not fit")
        ]
        roomy = [rid for rid in knobs if rid in resized] + misfits
        if roomy and (fixed, None) in combos:
            self._roomy = (f"alt{combos.index((fixed, None)) + 1}", roomy)
        return [
            self._call(f"alt{n}", "propose_patch", config_id=root_id, rule_ids=ids)
            if batch is None
            else self._call(
                f"alt{n}", "propose_patch", config_id=root_id, rule_ids=ids, micro_batch=batch
            )
            for n, (ids, batch) in enumerate(combos, start=1)
        ]

    def _follow_call(self) -> ToolCall | None:
        """propose_patch of the rules that made room with a smaller micro-batch, or did
        not fit, on the config of the candidate without guarded rules: the fit guard
        judges them at the micro-batch the other changes leave room for (checkpointing
        off fits at micro-batch 4 once flash attention drops the score matrices, where
        on the audited eager config only 1 fits). A second search step, as its config
        is known only once that candidate is proposed."""
        if self._roomy is None:
            return None
        key, rule_ids = self._roomy
        base = self._results.get(key)
        if not base or "config_id" not in base:
            return None
        return self._call(
            "alt-roomy", "propose_patch", config_id=base["config_id"], rule_ids=rule_ids
        )

    def _next_benchmark(self, patch: dict[str, Any] | None) -> tuple[str, ToolCall] | None:
        """The next candidate to benchmark, best projected first, or None when done: one
        measured candidate (``measure_candidates`` in measured mode), the next when a
        benchmark fails."""
        r, err = self._results, self._errors
        measured = [k for k in r if k.startswith("bench-")]
        failed = [k for k in err if k.startswith("bench-")]
        wanted = 1 if r["baseline"].get("projected", True) else self._measure()
        if len(measured) >= wanted or len(failed) >= MAX_BENCHMARK_FAILURES:
            return None
        for candidate in self._candidates(patch):
            key = f"bench-{candidate['patch_id']}"
            if key not in r and key not in err:
                text = (
                    "Benchmarking the patched config."
                    if not measured and not failed
                    else "Benchmarking the next-best candidate."
                )
                return text, self._call(
                    key, "benchmark", patch_id=candidate["patch_id"], steps=BENCHMARK_STEPS
                )
        return None

    def _measure(self) -> int:
        """How many candidates the audit measures (the knowledge-base query says)."""
        return max(1, int(self._results.get("kb1", {}).get("measure_candidates", 1)))

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
            rules = [
                rule
                for rule in r[kb_key].get("rules", [])
                if rule.get("kind") == "patch" and rule.get("matches_config")
            ]
            rule_ids = [rule["id"] for rule in rules]
            if not rule_ids:
                return patch, "", None
            if patch_key in err:
                # a later round's change that makes room at a smaller micro-batch
                # (checkpointing off, admitted only once the first round's flash attention
                # freed memory) and the micro-batch rule's larger batch can each fit and
                # not together: the round is proposed again without the micro-batch rule,
                # as the search below proposes from the audited config, where that change
                # does not apply. A refused first round is the search's to split.
                lean = [rule["id"] for rule in rules if "micro_batch_options" not in rule]
                if patch is None or not lean or len(lean) == len(rule_ids):
                    return patch, "", None
                patch_key, rule_ids = f"{patch_key}-lean", lean
                if patch_key in err:
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

    def _compare(self, r: dict[str, Any], err: dict[str, str]) -> tuple[str, ToolCall]:
        """compare_runs of the baseline with the fastest benchmarked candidate, or with
        itself (and why) when none could be benchmarked."""
        baseline = r["baseline"]["metrics_id"]
        name = r["parse"]["name"]
        runs = [(key.removeprefix("bench-"), r[key]) for key in r if key.startswith("bench-")]
        if runs:
            patch_id, best = max(runs, key=lambda run: float(run[1].get("tokens_per_sec", 0.0)))
            return "Comparing baseline and patched runs.", self._call(
                "compare",
                "compare_runs",
                workload_name=name,
                before=baseline,
                after=best["metrics_id"],
                patch=patch_id,
            )
        notes = [
            f"{key} failed: {value}"
            for key, value in err.items()
            if key.startswith(("patch", "bench-"))
        ]
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
