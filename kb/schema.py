"""The rule model: what one knowledge-base entry is, validated when it is loaded.

Every check that can be made without a device is made here, at load time: the id
format, the condition (parsed into a tree), the fields a rule sets (they must exist
on ``WorkloadConfig`` and accept the value), the citations (https URLs, never
titles) and the rule's own examples (each must really match, or really not match).
A rule that could never fire, or that always fires, fails to load.

Two kinds of rule:

- ``patch``: ``set`` changes the config, so the change can be benchmarked. A patch
  rule fires only when ``when`` holds *and* at least one ``set`` entry differs from
  the config: a change already in place never fires again.
  A patch rule whose change uses more memory declares a fit guard (``fits:
  {max_memory_fraction: 0.85}``, ``pytest_goblin.kb.facts``): in an audit it is
  admitted only when the patched config's predicted peak stays under that share of
  the device's memory. ``search: micro_batch`` instead of ``set`` makes a rule
  with several admissible values: the per-device batch grows by each factor that
  divides ``grad_accum_steps``, which shrinks by the same factor, so the global
  batch (``batch_size x grad_accum_steps``) stays exactly the same.
  ``search: smaller_micro_batch`` beside ``set`` lets a fit-guarded change that does
  not fit at the config's micro-batch fit at a smaller one: the ``set`` change alone
  first, then with ``batch_size`` divided by each factor k of it and
  ``grad_accum_steps`` multiplied by k (the global batch unchanged again); the fit
  guard admits the first of these that fits, the largest micro-batch.
- ``advisory``: host or cluster advice that no config field expresses (NUMA
  balancing, a library caveat). ``set`` stays empty, ``advice`` says what to do in
  words, and the rule fires when ``when`` holds. Advisories are reported as notes
  and never take part in a verdict.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, get_args

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from pytest_goblin.kb.conditions import (
    ALWAYS,
    FACT_ROOTS,
    MISSING,
    Condition,
    field_annotation,
    lookup,
    parse_condition,
)
from pytest_goblin.kb.facts import AuditFacts, catalogue_facts
from pytest_goblin.schemas import WasteBucket, WorkloadConfig

Category = Literal[
    "precision",
    "attention",
    "memory",
    "optimizer",
    "data",
    "compile",
    "kernels",
    "env",
    "collectives",
    "lora",
    "packing",
]
#: Categories in display order; rules are listed and matched in this order.
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)

Platform = Literal["rocm-instinct", "rocm-radeon", "cuda", "cpu", "all"]
#: The platforms a device can report; ``all`` is only a rule-side wildcard.
DEVICE_PLATFORMS: Final[tuple[str, ...]] = ("rocm-instinct", "rocm-radeon", "cuda", "cpu")

Search = Literal["micro_batch", "smaller_micro_batch"]
#: The fields a micro-batch search changes (besides a ``smaller_micro_batch`` rule's ``set``).
MICRO_BATCH_PATHS: Final[tuple[str, ...]] = ("batch_size", "grad_accum_steps")

_KEBAB: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URL: Final = TypeAdapter(HttpUrl)


class Examples(BaseModel):
    """Partial configs a rule must match and must not match.

    They are the rule's executable specification: the loader builds a
    ``WorkloadConfig`` from each and refuses the rule if one of them disagrees, so a
    rule that can never fire, or that always fires, cannot ship.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    matches: list[dict[str, Any]] = Field(min_length=1)
    not_matches: list[dict[str, Any]] = Field(min_length=1)


class FitGuard(BaseModel):
    """A memory-hungry change is admitted only when the patched config fits the device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_memory_fraction: float = Field(
        gt=0, le=1, description="largest predicted peak memory, as a share of device memory"
    )


class Rule(BaseModel):
    """One tuning rule: when it applies, what it changes, and the source that says so.

    ``requires`` maps a component to a PEP 440 version specifier, for example
    ``{torch: ">=2.4", rocm: "<6.2"}``. It is checked by ``requirements_met`` and by
    ``KnowledgeBase.match`` when the caller passes the versions it knows; a component
    whose version is unknown is not held against the rule (unknown is not evidence).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: str
    category: Category
    platforms: list[Platform] = Field(min_length=1)
    kind: Literal["patch", "advisory"] = "patch"
    when: Condition = ALWAYS
    set: dict[str, Any] = Field(default_factory=dict)
    search: Search | None = Field(
        default=None, description="a change with several admissible values, instead of set"
    )
    fits: FitGuard | None = None
    advice: str | None = Field(
        default=None, description="what to do, in words; required for advisory rules"
    )
    targets_bucket: WasteBucket | None = None
    symptom: str = Field(min_length=1)
    expected_impact: str = Field(min_length=1)
    expected_speedup: tuple[float, float] | None = Field(
        default=None, description="[low, high] tokens/s ratio, only where a source gives numbers"
    )
    citation: list[str] = Field(min_length=1)
    conflicts_with: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, description="higher wins when two rules change one field")
    requires: dict[str, str] | None = None
    examples: Examples

    @field_validator("id")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not _KEBAB.match(value):
            raise ValueError(f"{value!r} is not kebab-case (lowercase words joined by '-')")
        return value

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any) -> Condition:
        return parse_condition(value)

    @field_validator("set")
    @classmethod
    def _known_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            if path.split(".", 1)[0] in FACT_ROOTS:
                raise ValueError(
                    f"{path!r} is a read-only fact about the audit, not a config field"
                )
            field_annotation(path)
        return value

    @field_validator("citation", mode="before")
    @classmethod
    def _wrap_citation(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("citation")
    @classmethod
    def _https(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith("https://"):
                raise ValueError(f"{url!r} is not an https URL; cite the source's address")
            try:
                _URL.validate_python(url)
            except ValidationError as exc:
                raise ValueError(f"{url!r}: {exc.errors()[0]['msg']}") from None
        return value

    @field_validator("expected_speedup")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1]:
            raise ValueError(f"expected [low, high] with 0 < low <= high, got {list(value)}")
        return value

    @field_validator("requires")
    @classmethod
    def _specifiers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for component, spec in (value or {}).items():
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise ValueError(
                    f"{component}: {spec!r} is not a version specifier such as '>=2.4'"
                ) from None
        return value

    @field_serializer("when")
    def _dump_when(self, value: Condition) -> Any:
        return value.to_data()

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.kind == "patch" and not self.set and self.search is None:
            raise ValueError(
                "set: a patch rule must change at least one field "
                "(use kind: advisory for advice no field expresses)"
            )
        if self.search == "micro_batch" and (self.set or self.kind != "patch"):
            raise ValueError("search: a search rule is a patch rule whose search makes the change")
        if self.search == "smaller_micro_batch" and (
            not self.set or self.fits is None or set(self.set) & set(MICRO_BATCH_PATHS)
        ):
            raise ValueError(
                "search: smaller_micro_batch makes room for a fit-guarded set change; the rule "
                "needs set (not batch_size or grad_accum_steps) and fits"
            )
        if self.fits is not None and self.kind != "patch":
            raise ValueError("fits: only a patch rule's change can be guarded")
        if self.kind == "advisory":
            if self.set:
                raise ValueError("set: an advisory rule changes nothing; put the action in advice")
            if not self.advice:
                raise ValueError("advice: an advisory rule must say what to do")
        if self.id in self.conflicts_with:
            raise ValueError("conflicts_with: a rule cannot conflict with itself")
        try:
            self.apply(WorkloadConfig())
        except ValidationError as exc:
            raise ValueError(f"set: {_first_error(exc)}") from None
        self._check_examples()
        return self

    def applies_on(self, platform: str) -> bool:
        """Whether the rule is meant for a device of this platform."""
        return "all" in self.platforms or platform in self.platforms

    @property
    def paths(self) -> tuple[str, ...]:
        """The config paths the rule's change writes."""
        if self.search == "micro_batch":
            return MICRO_BATCH_PATHS
        if self.search == "smaller_micro_batch":
            return (*self.set, *MICRO_BATCH_PATHS)
        return tuple(self.set)

    def variants(self, config: WorkloadConfig) -> list[dict[str, Any]]:
        """Each admissible change for ``config``, as path → value.

        One (``set``) for a plain rule. For ``search: micro_batch``, one per factor
        k > 1 dividing ``grad_accum_steps``, smallest first: ``batch_size x k`` and
        ``grad_accum_steps / k``, so the global batch stays exactly the same (the
        learning rate, warmup and what is trained are never touched). For ``search:
        smaller_micro_batch``, ``set`` alone, then ``set`` with ``batch_size / k`` and
        ``grad_accum_steps x k`` for each factor k > 1 of ``batch_size``, largest
        micro-batch first.
        """
        if self.search == "smaller_micro_batch":
            batch, accum = config.batch_size, config.grad_accum_steps
            return [self.set] + [
                {**self.set, "batch_size": batch // k, "grad_accum_steps": accum * k}
                for k in range(2, batch + 1)
                if batch % k == 0
            ]
        if self.search != "micro_batch":
            return [self.set] if self.set else []
        batch, accum = config.batch_size, config.grad_accum_steps
        limit = WorkloadConfig.model_fields["batch_size"].metadata
        most = min((m.le for m in limit if hasattr(m, "le")), default=None)
        return [
            {"batch_size": batch * k, "grad_accum_steps": accum // k}
            for k in range(2, accum + 1)
            if accum % k == 0 and (most is None or batch * k <= most)
        ]

    def apply(
        self,
        config: WorkloadConfig,
        dumped: dict[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> WorkloadConfig:
        """The config with this rule's change applied (validated like any config).

        ``values`` picks one of ``variants``; by default the first. ``dumped`` is
        ``config.model_dump()`` when the caller already has it; it is not modified.
        """
        if values is None:
            found = self.variants(config)
            values = found[0] if found else {}
        if not values:
            return config
        data = dict(config.model_dump() if dumped is None else dumped)
        for path, value in values.items():
            _assign(data, path, copy.deepcopy(value))
        return WorkloadConfig.model_validate(data)

    def changes(
        self,
        config: WorkloadConfig,
        dumped: dict[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, Any, Any]]:
        """``(path, old, new)`` for each path of the change that differs from ``config``.

        Values are compared after validation, so ``env_vars.X: 1`` in a rule and
        ``"1"`` in the config count as the same. An absent path's old value is None.
        ``dumped`` is ``config.model_dump()`` when the caller already has it;
        ``values`` picks a variant (the first by default).
        """
        if not self.paths:
            return []
        before = config.model_dump() if dumped is None else dumped
        after = self.apply(config, before, values).model_dump()
        result = []
        for path in self.paths:
            old, new = lookup(before, path), lookup(after, path)
            if old != new:
                result.append((path, None if old is MISSING else old, new))
        return result

    def matches(self, config: WorkloadConfig, facts: AuditFacts | None = None) -> bool:
        """Whether the rule fires for ``config``, regardless of platform: ``when`` holds
        (on the config and the audit's ``facts``) and, for a patch, its change is not
        already in place. The fit guard is the matcher's (``admitted``)."""
        return self.fires(config, config.model_dump(), facts.data if facts else None)

    def fires(
        self,
        config: WorkloadConfig,
        dumped: dict[str, Any],
        facts: Mapping[str, Any] | None = None,
    ) -> bool:
        """``matches`` for a caller that holds ``config.model_dump()`` already.

        Matching a knowledge base asks this of every rule for every config, so it
        dumps the config once and builds no explanation (``why_not`` does, for
        load errors).
        """
        if not self.when.evaluate({**dumped, **facts} if facts else dumped):
            return False
        return self.kind != "patch" or bool(self.changes(config, dumped))

    def admitted(
        self, config: WorkloadConfig, facts: AuditFacts
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The variants of the change that pass the fit guard on this device, and why
        none does (None when some do). A rule without a guard admits every variant; a
        ``smaller_micro_batch`` rule only the first that fits (the largest micro-batch:
        a smaller one only costs throughput)."""
        variants = self.variants(config)
        if self.fits is None:
            return variants, None
        reasons = []
        kept = []
        for values in variants:
            why = facts.misfit(self.apply(config, values=values), self.fits.max_memory_fraction)
            if why is None:
                kept.append(values)
                if self.search == "smaller_micro_batch":
                    break
            else:
                reasons.append(why)
        return kept, (None if kept else reasons[0] if reasons else "nothing to change")

    def unmet_requirements(self, versions: Mapping[str, str]) -> list[str]:
        """The ``requires`` entries that ``versions`` shows to be unmet, in words.

        A component missing from ``versions``, or with a version that does not parse,
        is unknown and not reported.
        """
        unmet = []
        for component, spec in (self.requires or {}).items():
            have = versions.get(component)
            if have is None:
                continue
            try:
                version = Version(have)
            except InvalidVersion:
                continue
            if not SpecifierSet(spec).contains(version, prereleases=True):
                unmet.append(f"{component}{spec} (have {have})")
        return unmet

    def requirements_met(self, versions: Mapping[str, str]) -> bool:
        """Whether no known version contradicts ``requires``."""
        return not self.unmet_requirements(versions)

    def why_not(self, config: WorkloadConfig, facts: AuditFacts | None = None) -> str | None:
        """Why the rule does not apply to ``config`` (with an example's ``facts``, its fit
        guard too), or None when it does."""
        dumped = config.model_dump()
        if not self.when.evaluate({**dumped, **facts.data} if facts else dumped):
            return f"its condition ({self.when.describe()}) is false"
        if self.kind == "patch" and not self.changes(config):
            return "its change is already in place"
        if facts is not None and self.fits is not None:
            return self.admitted(config, facts)[1]
        return None

    def _check_examples(self) -> None:
        for label, cases, expected in (
            ("matches", self.examples.matches, True),
            ("not_matches", self.examples.not_matches, False),
        ):
            for i, case in enumerate(cases):
                try:
                    config, facts = example_case(case)
                except ValidationError as exc:
                    raise ValueError(
                        f"examples.{label}[{i}] is not a valid config: {_first_error(exc)}"
                    ) from None
                except (KeyError, ValueError, TypeError) as exc:
                    raise ValueError(f"examples.{label}[{i}]: facts: {exc}") from None
                reason = self.why_not(config, facts)
                if expected and reason is not None:
                    raise ValueError(f"examples.{label}[{i}] {case!r} does not match: {reason}")
                if not expected and reason is None:
                    raise ValueError(f"examples.{label}[{i}] {case!r} matches, but should not")


def expected_range(rules: Iterable[Rule]) -> tuple[float | None, float | None]:
    """The speedup range a patch made of ``rules`` may expect: the product of the ranges
    of the rules that give one (a rule without numbers counts as 1×); (None, None) when
    none does."""
    ranges = [rule.expected_speedup for rule in rules if rule.expected_speedup]
    if not ranges:
        return None, None
    low = high = 1.0
    for lo, hi in ranges:
        low, high = low * lo, high * hi
    return round(low, 3), round(high, 3)


def example_case(case: Mapping[str, Any]) -> tuple[WorkloadConfig, AuditFacts | None]:
    """A rule example's config, and the facts it gives (``device: {name: mi300x}``,
    ``profile: {...}``): ``device.name`` names a catalogue device whose analytic model
    fills the rest. ValidationError for a bad config, ValueError for bad facts."""
    config = WorkloadConfig.model_validate({k: v for k, v in case.items() if k not in FACT_ROOTS})
    if "device" not in case and "profile" not in case:
        return config, None
    device, profile = case.get("device") or {}, case.get("profile") or {}
    if not isinstance(device, Mapping) or not isinstance(profile, Mapping):
        raise ValueError("device and profile are mappings of facts")
    if "name" not in device:
        raise ValueError("device.name: give a catalogue device, e.g. {device: {name: mi300x}}")
    for root, values in (("device", device), ("profile", profile)):
        for key in values:
            if key != "buckets":
                field_annotation(f"{root}.{key}")
    return config, catalogue_facts(device, profile, config)


def _assign(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, copying each mapping on the way so the caller's nested ones stay."""
    parts = path.split(".")
    for part in parts[:-1]:
        child = data.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        data[part] = child
        data = child
    data[parts[-1]] = value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]
