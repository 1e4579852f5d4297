"""Loading rule files and matching rules against a config.

Built-in rules live in ``kb/rules/*.yaml`` (one file per category) and ship in the
wheel; users add directories of their own (``--goblin-kb DIR``). A file holds a YAML
list of rules, or a mapping ``{rules: [...]}``. Loading is strict: a bad rule is a
``KnowledgeBaseError`` naming the file, the rule and the field, never a rule that is
silently skipped.

Ids are unique. A user rule whose id is a built-in one replaces the built-in (that
is how a team adapts a rule to its hardware) and is recorded in
``KnowledgeBase.replaced`` so the plugin can say so; the same id twice among the
built-ins, or twice among user directories, is an error naming both files.

Order is deterministic everywhere: rules are kept sorted by category (in the order
of ``CATEGORIES``) and then by id, and ``match`` returns its lists in that order.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pytest_goblin import safe_yaml
from pytest_goblin.errors import GoblinError
from pytest_goblin.kb.conditions import did_you_mean
from pytest_goblin.kb.facts import AuditFacts
from pytest_goblin.kb.schema import CATEGORIES, DEVICE_PLATFORMS, Rule
from pytest_goblin.schemas import WorkloadConfig

BUNDLED_DIR = Path(__file__).parent / "rules"
MAX_DEPTH = 32
"""Rule files nest a few levels (list, rule, ``when``, a few ``any``/``all``/``not``); data
nested deeper is refused before the recursive condition parser sees it."""
WAIVED_REASON = "ignored by goblin ignore"


class KnowledgeBaseError(GoblinError, ValueError):
    """A rule file or rule that cannot be used; the message names file, rule and field."""


@dataclass
class MatchResult:
    """The rules that apply to one config on one platform, and the ones dropped.

    ``applicable`` holds patch and advisory rules whose platform fits, whose ``when``
    holds and whose change is not already in place, after conflicts are resolved.
    ``skipped`` holds ``(rule id, reason)`` for rules that matched but were dropped:
    waived by the user, lost a conflict, unmet version requirements, or (with an
    audit's facts) a change that does not fit the device. Rules that simply did not
    match are in neither list. ``options`` holds, for each applicable rule with a fit
    guard or a search, the variants of its change that fit (path → value each).
    """

    applicable: list[Rule] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def patches(self) -> list[Rule]:
        """The applicable rules that change the config (the ones a benchmark can judge)."""
        return [r for r in self.applicable if r.kind == "patch"]

    @property
    def advisories(self) -> list[Rule]:
        """The applicable rules that are advice only (reported as notes)."""
        return [r for r in self.applicable if r.kind == "advisory"]

    @property
    def waived(self) -> list[str]:
        """Ids of the rules that matched but were waived by ``goblin ignore``.

        A waived id that did not match the config is not listed: the report says what
        the waiver changed, not what it names.
        """
        return [rule_id for rule_id, why in self.skipped if why == WAIVED_REASON]


class KnowledgeBase:
    """A validated set of rules with unique ids, and where each came from."""

    def __init__(
        self,
        rules: Sequence[Rule],
        sources: Mapping[str, Path] | None = None,
        replaced: Sequence[tuple[str, Path]] = (),
    ) -> None:
        by_id: dict[str, Rule] = {}
        for rule in rules:
            if rule.id in by_id:
                raise KnowledgeBaseError(f"duplicate rule id {rule.id!r}")
            by_id[rule.id] = rule
        for rule in rules:
            unknown = [other for other in rule.conflicts_with if other not in by_id]
            if unknown:
                where = f"{sources[rule.id]}: " if sources and rule.id in sources else ""
                raise KnowledgeBaseError(
                    f"{where}rule {rule.id!r}: conflicts_with names unknown rule "
                    f"{unknown[0]!r}{did_you_mean(unknown[0], by_id)}"
                )
        self.rules: list[Rule] = sorted(rules, key=_order)
        self.sources: dict[str, Path] = dict(sources or {})
        self.replaced: list[tuple[str, Path]] = list(replaced)
        self._by_id = by_id
        self._facts = {rule.id: _Facts.of(rule) for rule in self.rules}
        self._candidates: dict[str, list[Rule]] = {}

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._by_id

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError with the closest ids when there is none."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise KeyError(f"no rule {rule_id!r}{did_you_mean(rule_id, self._by_id)}") from None

    def by_category(self) -> dict[str, list[Rule]]:
        """Rules grouped by category, categories in display order, empty ones left out."""
        groups: dict[str, list[Rule]] = {}
        for rule in self.rules:
            groups.setdefault(rule.category, []).append(rule)
        return groups

    def match(
        self,
        config: WorkloadConfig,
        platform: str,
        ignore: Collection[str] = (),
        versions: Mapping[str, str] | None = None,
        facts: AuditFacts | None = None,
    ) -> MatchResult:
        """The rules that apply to ``config`` on a ``platform`` device.

        ``facts`` (an audit's device and profile, ``pytest_goblin.kb.facts``) are what
        conditions read beside the config, and check each rule's fit guard: a
        guarded change that does not fit is skipped with the predicted peak. Without
        facts, conditions on facts are false and guards are not checked.

        Conflicts: two rules that change the same field (or one declares
        ``conflicts_with`` the other) are resolved by ``priority``, higher first, ties
        broken by id; the loser goes to ``skipped``. Ignored rules are dropped before
        conflicts are resolved, so waiving ``flash-attention`` lets ``sdpa-attention``
        apply.

        Rules see each other's changes: a rule whose condition fails on ``config``
        but holds once the other matching rules' changes to *other* fields are in
        place joins too (flash attention needs bf16, so on an fp32 + eager config
        it joins ``bf16-mixed-precision`` and then wins the attention field over
        sdpa). Waiving ``bf16-mixed-precision`` leaves flash out and sdpa in. With ``versions`` (e.g. ``{"torch": "2.5.1"}``), rules whose
        ``requires`` those versions contradict are skipped too.

        An ignore entry that names no rule raises ``KnowledgeBaseError``: a typo in a
        waiver would otherwise silently waive nothing.
        """
        if platform not in DEVICE_PLATFORMS:
            raise ValueError(
                f"unknown platform {platform!r}; expected one of {', '.join(DEVICE_PLATFORMS)}"
            )
        waived = set(ignore)
        for rule_id in sorted(waived):
            if rule_id not in self._by_id:
                hint = did_you_mean(rule_id, self._by_id)
                raise KnowledgeBaseError(f"goblin ignore names unknown rule {rule_id!r}{hint}")
        skipped: list[tuple[Rule, str]] = []
        live: list[tuple[Rule, set[str]]] = []
        seen: set[str] = set()
        views = _Views(config, self._facts, facts.data if facts else None)
        options: dict[str, list[dict[str, Any]]] = {}
        if platform not in self._candidates:
            self._candidates[platform] = [rule for rule in self.rules if rule.applies_on(platform)]
        candidates = self._candidates[platform]
        while True:
            joined = False
            for rule in candidates:
                if rule.id in seen or not views.joins(rule, live):
                    continue
                seen.add(rule.id)
                joined = True
                if rule.id in waived:
                    skipped.append((rule, WAIVED_REASON))
                    continue
                unmet = rule.unmet_requirements(versions) if versions is not None else []
                if unmet:
                    skipped.append((rule, f"requires {', '.join(unmet)}"))
                    continue
                if rule.kind == "patch" and (rule.fits or rule.search):
                    variants, misfit = (
                        (rule.variants(config), None)
                        if facts is None
                        else rule.admitted(config, facts)
                    )
                    if misfit is not None:
                        skipped.append((rule, misfit))
                        continue
                    options[rule.id] = variants
                live.append((rule, {path for path, _, _ in views.changes(rule)}))
            if not joined:
                break
        accepted: list[tuple[Rule, set[str]]] = []
        for rule, paths in sorted(live, key=lambda item: _precedence(item[0])):
            reason = _conflict(rule, paths, accepted)
            if reason is None:
                accepted.append((rule, paths))
            else:
                skipped.append((rule, reason))
        kept = sorted((rule for rule, _ in accepted), key=_order)
        return MatchResult(
            applicable=kept,
            skipped=[(rule.id, why) for rule, why in sorted(skipped, key=lambda s: _order(s[0]))],
            options={rule.id: options[rule.id] for rule in kept if rule.id in options},
        )


def load_kb(
    extra_dirs: Sequence[str | Path] = (), extra_rules: Sequence[tuple[Rule, Path]] = ()
) -> KnowledgeBase:
    """The built-in rules plus the rules in ``extra_dirs`` (directories or single files).

    ``extra_rules`` are user rules from elsewhere (the ``pytest_goblin_rules``
    hook), each with the file it came from; they join after the directories'
    under the same rules for duplicates and replacements. The built-in files
    are read and validated once per process.
    """
    bundled = _bundled()
    rules = {rule.id: (rule, path) for rule, path in bundled}
    builtin_ids = set(rules)
    user_files: dict[str, Path] = {}
    replaced: list[tuple[str, Path]] = []
    located = [item for d in extra_dirs for item in _read_location(Path(d))]
    for rule, path in [*located, *extra_rules]:
        if rule.id in user_files:
            raise KnowledgeBaseError(
                f"duplicate rule id {rule.id!r} in {user_files[rule.id]} and {path}"
            )
        user_files[rule.id] = path
        if rule.id in builtin_ids:
            replaced.append((rule.id, path))
        rules[rule.id] = (rule, path)
    return KnowledgeBase(
        [rule for rule, _ in rules.values()],
        sources={rule_id: path for rule_id, (_, path) in rules.items()},
        replaced=replaced,
    )


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[tuple[Rule, Path], ...]:
    seen: dict[str, Path] = {}
    loaded = []
    for rule, path in _read_location(BUNDLED_DIR):
        if rule.id in seen:
            raise KnowledgeBaseError(f"duplicate rule id {rule.id!r} in {seen[rule.id]} and {path}")
        seen[rule.id] = path
        loaded.append((rule, path))
    return tuple(loaded)


def _read_location(location: Path) -> list[tuple[Rule, Path]]:
    if location.is_file():
        files = [location]
    elif location.is_dir():
        files = sorted(p for p in location.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise KnowledgeBaseError(f"{location}: no rule files (*.yaml, *.yml) in this directory")
    else:
        raise KnowledgeBaseError(f"{location}: no such rule directory or file")
    return [(rule, path) for path in files for rule in read_rule_file(path)]


def read_rule_file(path: Path) -> list[Rule]:
    """The rules of one YAML file, each validated; the first bad one raises."""
    try:
        data = safe_yaml.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problem = safe_yaml.describe_error(exc, "not valid YAML")
        raise KnowledgeBaseError(f"{path}: {problem}") from None
    except OSError as exc:
        raise KnowledgeBaseError(f"{path}: cannot read: {exc.strerror}") from None
    if safe_yaml.nested_deeper_than(data, MAX_DEPTH):
        raise KnowledgeBaseError(
            f"{path}: nested more than {MAX_DEPTH} levels deep; conditions "
            "nest a few any/all/not levels"
        )
    if data is None:
        return []
    if isinstance(data, dict):
        if set(data) != {"rules"}:
            raise KnowledgeBaseError(
                f"{path}: expected a list of rules or a mapping with only 'rules', "
                f"got keys {sorted(map(str, data))}"
            )
        data = data["rules"]
    if not isinstance(data, list):
        raise KnowledgeBaseError(f"{path}: expected a list of rules, got {type(data).__name__}")
    return [validate_rule(raw, str(path), index) for index, raw in enumerate(data, start=1)]


def validate_rule(raw: Any, source: str, index: int) -> Rule:
    """The ``index``-th rule from ``source`` (a file, or a plugin's hook), validated.

    A ``Rule`` is taken as it is; a mapping is validated as in a rule file, and
    a bad one raises KnowledgeBaseError naming the source, the rule and the field.
    """
    if isinstance(raw, Rule):
        return raw
    if not isinstance(raw, Mapping):
        raise KnowledgeBaseError(f"{source}: rule #{index}: expected a mapping, got {raw!r}")
    rule_id = raw.get("id")
    label = f"rule {rule_id!r} (#{index})" if isinstance(rule_id, str) else f"rule #{index}"
    try:
        return Rule.model_validate(dict(raw))
    except ValidationError as exc:
        raise KnowledgeBaseError(f"{source}: {label}: {_describe(exc)}") from None


@dataclass(frozen=True)
class _Facts:
    """What matching needs to know about a rule beyond its config, worked out once per
    knowledge base instead of on every lookahead of every match."""

    own: frozenset[str]
    """The paths the rule sets."""
    own_roots: frozenset[str]
    """Their top-level fields: two paths can only overlap when these are shared."""
    reads: frozenset[str]
    """The top-level fields its condition reads."""

    @classmethod
    def of(cls, rule: Rule) -> _Facts:
        return cls(
            own=frozenset(rule.paths),
            own_roots=frozenset(path.split(".", 1)[0] for path in rule.paths),
            reads=frozenset(path.split(".", 1)[0] for path in rule.when.paths()),
        )


class _Views:
    """One ``match`` call's configs as other rules' changes leave them, each made once.

    The lookahead asks every candidate rule, on every pass, whether it fires once
    the live rules' changes are in place. The answer only changes when a rule
    joins, most candidates see the same set of changes, and a rule whose condition
    is false and reads no field those changes touch cannot start to fire. So each
    patched config is made once, each rule's condition and change on the config
    itself are worked out once, and a rule is only evaluated on a patched config
    when it could answer differently there.
    """

    def __init__(
        self,
        config: WorkloadConfig,
        facts: Mapping[str, _Facts],
        audit_facts: Mapping[str, Any] | None = None,
    ) -> None:
        dumped = config.model_dump()
        self._base = dumped
        self._facts = facts
        self._audit_facts = audit_facts
        self._seen = {**dumped, **audit_facts} if audit_facts else dumped
        self._configs: dict[tuple[str, ...], tuple[WorkloadConfig, dict[str, Any]]] = {
            (): (config, dumped)
        }
        self._touched: dict[tuple[str, ...], frozenset[str]] = {(): frozenset()}
        self._holds: dict[str, bool] = {}
        self._here: dict[str, bool] = {}
        self._changes: dict[str, list[tuple[str, Any, Any]]] = {}
        self._fired: dict[tuple[str, tuple[str, ...]], bool] = {}
        self._asked: dict[str, int] = {}
        self._live_count = 0
        self._ordered: list[tuple[Rule, set[str], frozenset[str]]] = []
        self._all: tuple[tuple[Rule, ...], tuple[str, ...]] = ((), ())
        self._all_roots: frozenset[str] = frozenset()

    def joins(self, rule: Rule, live: Sequence[tuple[Rule, set[str]]]) -> bool:
        """Whether ``rule`` fires on the config, or on it with the ``live`` rules' changes.

        ``live`` only grows, so a rule that did not join is asked again only
        once more rules are live.
        """
        if self._fires_here(rule):
            return True
        if self._asked.get(rule.id) == len(live):
            return False
        self._asked[rule.id] = len(live)
        if self._live_count != len(live):
            self._order(live)
        facts = self._facts[rule.id]
        others, key = self._others(facts)
        if not others:
            return False
        if not self._holds[rule.id] and not facts.reads & self._touched[self._view(others, key)]:
            return False
        return self._fires(rule, others, key)

    def changes(self, rule: Rule) -> list[tuple[str, Any, Any]]:
        """``rule.changes`` on the config itself, made once."""
        if rule.id not in self._changes:
            self._changes[rule.id] = rule.changes(*self._configs[()])
        return self._changes[rule.id]

    def _fires_here(self, rule: Rule) -> bool:
        """``rule.fires`` on the config itself, keeping whether its condition held."""
        fired = self._here.get(rule.id)
        if fired is None:
            holds = rule.when.evaluate(self._seen)
            self._holds[rule.id] = holds
            fired = holds and (rule.kind != "patch" or bool(self.changes(rule)))
            self._here[rule.id] = fired
        return fired

    def _order(self, live: Sequence[tuple[Rule, set[str]]]) -> None:
        """The live rules that change something, in reverse order of precedence.

        Live rules may still conflict (flash and sdpa both set attention_impl): the
        change that will win the conflict is applied last and is the one a rule sees.
        Rules that change nothing (advisories) join without changing what others see.
        """
        added = [(rule, paths) for rule, paths in live[self._live_count :] if paths]
        self._live_count = len(live)
        if not added:
            return
        ordered = sorted(
            [*((rule, paths) for rule, paths, _ in self._ordered), *added],
            key=lambda item: _precedence(item[0]),
            reverse=True,
        )
        self._ordered = [
            (rule, paths, frozenset(p.split(".", 1)[0] for p in paths)) for rule, paths in ordered
        ]
        everyone = tuple(rule for rule, _, _ in self._ordered)
        self._all = (everyone, tuple(rule.id for rule in everyone))
        self._all_roots = frozenset().union(*(roots for _, _, roots in self._ordered))

    def _others(self, facts: _Facts) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
        """The live rules whose changes a rule sees (all but those touching fields it
        sets), and their ids."""
        if not facts.own_roots & self._all_roots:
            return self._all
        others = tuple(
            other
            for other, paths, roots in self._ordered
            if not (
                roots & facts.own_roots and any(_overlap(p, q) for p in paths for q in facts.own)
            )
        )
        return others, tuple(other.id for other in others)

    def _view(self, others: tuple[Rule, ...], key: tuple[str, ...]) -> tuple[str, ...]:
        """``key``, once the config with ``others``' changes applied is made."""
        if key not in self._configs:
            patched, dumped = self._configs[()]
            for other in others:
                patched = other.apply(patched, dumped)
                dumped = patched.model_dump()
            self._configs[key] = (patched, dumped)
            # a field is touched when its value differs or prints differently (1 and
            # True are equal); the same object is neither
            base = self._base
            self._touched[key] = frozenset(
                field
                for field, value in dumped.items()
                if value is not base[field]
                and (value != base[field] or repr(value) != repr(base[field]))
            )
        return key

    def _fires(self, rule: Rule, others: tuple[Rule, ...], key: tuple[str, ...]) -> bool:
        if (rule.id, key) not in self._fired:
            self._fired[rule.id, key] = rule.fires(
                *self._configs[self._view(others, key)], self._audit_facts
            )
        return self._fired[rule.id, key]


def _conflict(rule: Rule, paths: set[str], accepted: list[tuple[Rule, set[str]]]) -> str | None:
    for winner, winner_paths in accepted:
        if winner.id in rule.conflicts_with or rule.id in winner.conflicts_with:
            return f"conflicts with {winner.id} (declared)"
        shared = sorted(p for p in paths if any(_overlap(p, q) for q in winner_paths))
        if shared:
            return f"conflicts with {winner.id} on {', '.join(shared)}"
    return None


def _overlap(a: str, b: str) -> bool:
    """Whether two dotted paths touch the same value (equal, or one contains the other)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _precedence(rule: Rule) -> tuple[int, str]:
    """Conflict order: higher priority first, ties broken by id."""
    return -rule.priority, rule.id


def _order(rule: Rule) -> tuple[int, str]:
    return CATEGORIES.index(rule.category), rule.id


def _describe(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"])
        loc = loc.replace(".[", "[")
        msg = str(err["msg"]).removeprefix("Value error, ")
        messages.append(msg if not loc or msg.startswith(loc) else f"{loc}: {msg}")
    return "; ".join(messages)
