"""The condition language of rule ``when`` clauses.

A condition is parsed once, at load time, into a typed tree: an unknown field, an
unknown operator or a value the field can never hold fails loading with a message
that says where, instead of silently never matching.

Syntax (one form, mapping-based)::

    when:
      precision: {in: [fp32, tf32]}        # field: {operator: value}
      dataloader_workers: 0                # field: scalar  means  eq
      seq_len: {gte: 1024, lt: 8192}       # several operators on one field: all hold
      any:                                 # combinators: all / any take a list,
        - attention_impl: eager            #              not takes one condition
        - not: {env_vars.HIP_FORCE_DEV_KERNARG: "1"}

A mapping with several keys holds when every entry holds. Fields are dotted paths
into ``WorkloadConfig.model_dump()``: a top-level field, ``env_vars.NAME``,
``extras.any.depth`` or ``model.<dim>``; or read-only *facts* about the audited
device and the baseline's profile run (``FACTS``: ``device.memory_gb``,
``profile.memory_fraction``, ``profile.buckets.memory_headroom``, ...), which an
audit passes beside the config. Where a fact is unknown (no profile yet, a device
that does not report its memory) it is missing. Operators: ``eq ne in not_in lt lte gt gte
regex exists``. A bare list is refused (write ``{in: [...]}`` or ``{eq: [...]}``),
because reading it as either would surprise half the readers.

Missing paths (an unset env var, an absent extras key): a comparison is false,
except the negative ones, ``ne`` and ``not_in``, which hold, and ``exists: false``.
A path whose value is null counts as missing for ``exists`` only.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from pytest_goblin.catalogue.architectures import ModelArch
from pytest_goblin.errors import GoblinError
from pytest_goblin.schemas import WASTE_BUCKETS, WorkloadConfig

FACTS: Final[dict[str, tuple[Any, str]]] = {
    "device.name": (str, "the audited device's catalogue name, e.g. mi300x, or its own name"),
    "device.platform": (str, "rocm-instinct, rocm-radeon, cuda or cpu"),
    "device.memory_gb": (float, "the device's memory in GB (10^9 bytes)"),
    "profile.peak_memory_gb": (float, "peak memory of the baseline's profile run, GB"),
    "profile.memory_fraction": (float, "profile.peak_memory_gb / device.memory_gb"),
    **{
        f"profile.buckets.{bucket}": (float, f"share of the profiled step time in {bucket}")
        for bucket in WASTE_BUCKETS
    },
}
"""The read-only facts a condition may read beside the config: type and meaning.

Measured audits give the profile's figures as measured; projected audits as the
analytic model projects them. A rule may not ``set`` a fact."""
FACT_ROOTS: Final = frozenset(path.split(".", 1)[0] for path in FACTS)

OPERATORS: Final[tuple[str, ...]] = (
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "regex",
    "exists",
)

_NUMERIC_OPS: Final = frozenset({"lt", "lte", "gt", "gte"})
_SYMBOLS: Final = {
    "eq": "==",
    "ne": "!=",
    "in": "in",
    "not_in": "not in",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "regex": "=~",
}


class ConditionError(GoblinError, ValueError):
    """A condition that cannot be parsed; the message says where and why."""


class _Missing:
    """Marks a path that does not exist in the config (distinct from a null value)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``MISSING`` when any segment is absent."""
    return _follow(data, path.split("."))


def _follow(data: Mapping[str, Any], parts: Iterable[str]) -> Any:
    current: Any = data
    for part in parts:
        # a dict is by far the common case: the isinstance check on the ABC is slower
        if not (type(current) is dict or isinstance(current, Mapping)) or part not in current:
            return MISSING
        current = current[part]
    return current


def field_annotation(path: str) -> Any:
    """The type a dotted config path holds; ValueError (with suggestions) when it has none.

    Shared by conditions and by rule ``set`` validation so that both refuse the same
    typos with the same message.
    """
    root, _, rest = path.partition(".")
    if root in FACT_ROOTS:
        if path not in FACTS:
            raise ValueError(f"unknown fact {path!r}{did_you_mean(path, FACTS)}")
        return FACTS[path][0]
    fields = WorkloadConfig.model_fields
    if root not in fields:
        raise ValueError(f"unknown field {path!r}{did_you_mean(root, fields)}")
    if not rest:
        return fields[root].annotation
    if root == "env_vars":
        if "." in rest:
            raise ValueError(f"{path!r}: env_vars takes one variable name after the dot")
        return str
    if root == "extras":
        return Any
    if root == "model":
        dims = ModelArch.model_fields
        if rest not in dims:
            raise ValueError(f"unknown model dim {path!r}{did_you_mean(rest, dims)}")
        return dims[rest].annotation
    raise ValueError(f"{path!r}: {root!r} has no sub-fields (only env_vars, extras and model do)")


class Condition(ABC):
    """A parsed condition: evaluate it, show it to a person, or dump it back to YAML data."""

    @abstractmethod
    def evaluate(self, data: Mapping[str, Any]) -> bool:
        """Whether the condition holds for a ``WorkloadConfig.model_dump()``."""

    @abstractmethod
    def describe(self) -> str:
        """A one-line, human-readable form (for ``--goblin-rules -v`` and reports)."""

    @abstractmethod
    def paths(self) -> frozenset[str]:
        """Every dotted path ``evaluate`` reads: the condition depends on nothing else."""

    @abstractmethod
    def to_data(self) -> Any:
        """The canonical YAML form; ``parse_condition(c.to_data())`` gives ``c`` back."""


@dataclass(frozen=True)
class Always(Condition):
    """The condition of a rule without ``when``: the rule then fires whenever its change
    is not yet in place, which is itself a check on the config."""

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        return True

    def describe(self) -> str:
        return "always"

    def paths(self) -> frozenset[str]:
        return frozenset()

    def to_data(self) -> None:
        return None


ALWAYS: Final = Always()


@dataclass(frozen=True)
class Compare(Condition):
    """One operator applied to the value at one path."""

    path: str
    op: str
    value: Any
    _parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _test: Callable[[Any, Any], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # worked out once: matching asks every condition of every config an audit makes
        object.__setattr__(self, "_parts", tuple(self.path.split(".")))
        object.__setattr__(self, "_test", _TESTS[self.op])

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        actual = _follow(data, self._parts)
        if actual is MISSING:
            return self.op in ("ne", "not_in") or (self.op == "exists" and self.value is False)
        return self._test(actual, self.value)

    def describe(self) -> str:
        if self.op == "exists":
            return f"{self.path} {'is set' if self.value else 'is not set'}"
        shown = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.path} {_SYMBOLS[self.op]} {json.dumps(shown, default=str)}"

    def paths(self) -> frozenset[str]:
        return frozenset({self.path})

    def to_data(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {self.path: {self.op: value}}


@dataclass(frozen=True)
class All(Condition):
    """Holds when every part holds."""

    parts: tuple[Condition, ...]

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        for part in self.parts:
            if not part.evaluate(data):
                return False
        return True

    def describe(self) -> str:
        return " and ".join(_grouped(p) for p in self.parts)

    def paths(self) -> frozenset[str]:
        return frozenset().union(*(p.paths() for p in self.parts))

    def to_data(self) -> dict[str, Any]:
        return {"all": [p.to_data() for p in self.parts]}


@dataclass(frozen=True)
class AnyOf(Condition):
    """Holds when at least one part holds (the ``any`` combinator)."""

    parts: tuple[Condition, ...]

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        for part in self.parts:
            if part.evaluate(data):
                return True
        return False

    def describe(self) -> str:
        return " or ".join(_grouped(p) for p in self.parts)

    def paths(self) -> frozenset[str]:
        return frozenset().union(*(p.paths() for p in self.parts))

    def to_data(self) -> dict[str, Any]:
        return {"any": [p.to_data() for p in self.parts]}


@dataclass(frozen=True)
class Not(Condition):
    """Holds when its part does not."""

    part: Condition

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        return not self.part.evaluate(data)

    def describe(self) -> str:
        return f"not {_grouped(self.part)}"

    def paths(self) -> frozenset[str]:
        return self.part.paths()

    def to_data(self) -> dict[str, Any]:
        return {"not": self.part.to_data()}


def parse_condition(data: Any, where: str = "when") -> Condition:
    """Parse YAML data into a condition tree; ``ConditionError`` names the bad spot.

    ``None`` (no ``when``) gives ``ALWAYS``. ``where`` is the location prefix used in
    error messages, so nested errors read like ``when.any[1].precision: ...``.
    """
    if isinstance(data, Condition):
        return data
    if data is None:
        return ALWAYS
    if not isinstance(data, Mapping):
        raise ConditionError(
            f"{where}: a condition is a mapping such as {{precision: fp32}}, "
            f"got {type(data).__name__} {data!r}"
        )
    if not data:
        raise ConditionError(
            f"{where}: empty condition; leave `when` out for a rule that applies "
            "whenever its change is not in place"
        )
    parts: list[Condition] = []
    for key, value in data.items():
        key = str(key)
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(f"{where}.{key}: expects a non-empty list of conditions")
            items = tuple(parse_condition(v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
            parts.append(All(items) if key == "all" else AnyOf(items))
        elif key == "not":
            parts.append(Not(parse_condition(value, f"{where}.not")))
        else:
            parts.extend(_parse_field(key, value, where))
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def evaluate(cond: Condition | Mapping[str, Any] | None, config_dict: Mapping[str, Any]) -> bool:
    """Whether ``cond`` holds for ``config_dict`` (a ``WorkloadConfig.model_dump()``).

    Raw YAML data is parsed first, so a malformed condition raises rather than
    quietly evaluating to false.
    """
    return parse_condition(cond).evaluate(config_dict)


def _parse_field(path: str, value: Any, where: str) -> list[Condition]:
    try:
        annotation = field_annotation(path)
    except ValueError as exc:
        raise ConditionError(f"{where}: {exc}") from None
    here = f"{where}.{path}"
    if isinstance(value, Mapping):
        if not value:
            raise ConditionError(f"{here}: empty operator mapping; expected e.g. {{eq: ...}}")
        return [
            Compare(path, str(op), _check_value(str(op), v, annotation, here))
            for op, v in value.items()
        ]
    if isinstance(value, list):
        raise ConditionError(
            f"{here}: a bare list is ambiguous; write {{in: [...]}} for membership "
            "or {eq: [...]} for an equal list"
        )
    return [Compare(path, "eq", _check_value("eq", value, annotation, here))]


def _check_value(op: str, value: Any, annotation: Any, here: str) -> Any:
    """Validate an operator's value against the field's type, so that a condition that
    can never hold (``precision: bf17``, ``env_vars.X: 1`` instead of ``"1"``) fails
    loading instead of silently never matching."""
    if op not in OPERATORS:
        raise ConditionError(
            f"{here}: unknown operator {op!r}{did_you_mean(op, OPERATORS)}; "
            f"expected one of {', '.join(OPERATORS)}"
        )
    if op == "exists":
        if not isinstance(value, bool):
            raise ConditionError(f"{here}: exists takes true or false, got {value!r}")
        return value
    if op == "regex":
        if not isinstance(value, str):
            raise ConditionError(f"{here}: regex takes a string, got {value!r}")
        try:
            re.compile(value)
        except re.error as exc:
            raise ConditionError(f"{here}: bad regex {value!r}: {exc}") from None
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ConditionError(f"{here}: {op} takes a non-empty list, got {value!r}")
        return tuple(_typed(op, v, annotation, here) for v in value)
    if op in _NUMERIC_OPS and not _is_number(value):
        raise ConditionError(f"{here}: {op} takes a number, got {value!r}")
    return _typed(op, value, annotation, here)


def _typed(op: str, value: Any, annotation: Any, here: str) -> Any:
    try:
        _adapter(annotation).validate_python(value, strict=True)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ConditionError(f"{here}: {op} {value!r} can never hold: {reason}") from None
    return value


@functools.lru_cache(maxsize=64)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    """One validator per field type: building one costs more than the check it makes,
    and loading the knowledge base checks a few hundred condition values."""
    return TypeAdapter(annotation)


def _same(actual: Any, expected: Any) -> bool:
    """Equality that keeps booleans apart from numbers (Python has ``True == 1``)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    return bool(actual == expected)


def _exists(actual: Any, wanted: bool) -> bool:
    """``exists`` of a present value: a null counts as missing."""
    return (actual is not None) is wanted


def _differs(actual: Any, expected: Any) -> bool:
    return not _same(actual, expected)


def _among(actual: Any, values: tuple[Any, ...]) -> bool:
    return any(_same(actual, v) for v in values)


def _not_among(actual: Any, values: tuple[Any, ...]) -> bool:
    return not _among(actual, values)


def _regex(actual: Any, pattern: str) -> bool:
    return isinstance(actual, str) and re.search(pattern, actual) is not None


def _lt(actual: Any, value: Any) -> bool:
    return _is_number(actual) and bool(actual < value)


def _lte(actual: Any, value: Any) -> bool:
    return _is_number(actual) and bool(actual <= value)


def _gt(actual: Any, value: Any) -> bool:
    return _is_number(actual) and bool(actual > value)


def _gte(actual: Any, value: Any) -> bool:
    return _is_number(actual) and bool(actual >= value)


_TESTS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": _same,
    "ne": _differs,
    "in": _among,
    "not_in": _not_among,
    "regex": _regex,
    "lt": _lt,
    "lte": _lte,
    "gt": _gt,
    "gte": _gte,
    "exists": _exists,
}
"""Each operator's test of a present value (an absent one is handled before): chosen
once per condition instead of by a chain of comparisons on every call."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _grouped(cond: Condition) -> str:
    text = cond.describe()
    return f"({text})" if isinstance(cond, (All, AnyOf)) else text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choices, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
