"""Reading workload files into Workloads, and writing patches back as diffs.

Files are parsed, never executed (``yaml.safe_load``, ``json``). Every error
names the file and, where there is one, the field.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_goblin import formats, safe_yaml
from pytest_goblin.catalogue.architectures import unsupported
from pytest_goblin.errors import GoblinError, NotAWorkload, WorkloadError
from pytest_goblin.formats import hf_script, native
from pytest_goblin.formats.base import (
    Edit,
    Format,
    Reading,
    Unpatchable,
    apply_edits,
    check_vocabulary,
    sidecar_hint,
)
from pytest_goblin.formats.vocabulary import Vocabulary
from pytest_goblin.printable import git_quoted, printable
from pytest_goblin.redact import redact_mapping, redact_text
from pytest_goblin.schemas import Change, WorkloadConfig, WorkloadSettings
from pytest_goblin.workload.sidecar import (
    Sidecar,
    check_fills,
    is_sidecar,
    load_sidecar,
    sidecar_display,
)

WORKLOAD_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".py"})
MAX_FILE_BYTES = 1_000_000
"""Workload files are small; a bigger file is refused before it is read."""
MAX_DEPTH = 32
"""Workload formats nest a few sections deep; data nested deeper is refused before any
walker (validation, redaction, hashing) recurses into it."""
NOT_A_WORKLOAD = (
    "not a workload: expected a goblin workload (a mapping with `model` or `model_name`) or a "
    f"config of one of: {formats.names()}"
)


@dataclass(frozen=True)
class WorkloadSource:
    """Where a workload came from: the file, its format and its text."""

    path: Path
    display_path: str
    """The path as every output shows it: relative to where pytest ran, with control
    characters escaped (:func:`~pytest_goblin.printable.printable`)."""
    relative_path: str
    """The same path as written, for the diff's header (quoted there as git quotes it)."""
    format: str
    text: str


@dataclass(frozen=True)
class Workload:
    name: str
    config: WorkloadConfig
    settings: WorkloadSettings
    source: WorkloadSource
    sources: dict[str, str] = field(default_factory=dict)
    """For each config field read from the file, the key (or call) it came from."""


def default_name(path: Path) -> str:
    """``llama.goblin.yaml`` → ``llama``: the workload name when the file gives none."""
    name = path.name
    for suffix in (".goblin.yaml", ".goblin.yml", ".goblin.json", ".yaml", ".yml", ".json"):
        if name.endswith(suffix):
            return printable(name[: -len(suffix)])
    return printable(path.stem)


def load_data(path: Path, display: str) -> tuple[str, Any]:
    """The file's text and parsed content, or a WorkloadError that says why not.

    The size is checked before anything is read, and at most one byte more than
    the limit is ever read (a file that grows meanwhile is refused too).
    """
    display = printable(display)
    try:
        size = path.stat().st_size
        if size <= MAX_FILE_BYTES:
            with path.open("rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
            size = len(raw)
    except OSError as exc:
        raise WorkloadError(display, f"cannot read file: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise WorkloadError(display, f"file is {size} bytes; workloads are limited to 1 MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError(display, f"not UTF-8 text (byte {exc.start})") from None
    data = parse_text(text, path.suffix, display) if text.strip() else None
    if data is None:
        raise WorkloadError(display, "file is empty")
    return text, data


def parse_text(text: str, suffix: str, display: str) -> Any:
    """Parsed content: JSON, YAML (safe loader), or a Python syntax tree (never run).

    Data nested more than ``MAX_DEPTH`` levels is refused here, whichever parser
    notices first (a parser's own recursion limit, or the check after it).
    """
    try:
        if suffix == ".py":
            return ast.parse(text, filename=display)
        if suffix == ".json":
            data = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            data = safe_yaml.load(text)
    except DuplicateKey as exc:
        raise WorkloadError(display, f"invalid JSON: {exc}", field=exc.key) from None
    except SyntaxError as exc:
        problem = _HUGE_NUMBER if _INT_LIMIT in exc.msg else exc.msg
        raise WorkloadError(display, f"invalid Python at line {exc.lineno}: {problem}") from None
    except json.JSONDecodeError as exc:
        raise WorkloadError(
            display, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        raise WorkloadError(display, safe_yaml.describe_error(exc)) from None
    except (RecursionError, MemoryError):
        raise WorkloadError(display, _too_deep()) from None
    except ValueError as exc:  # Python's int-string limit: a number of thousands of digits
        problem = _HUGE_NUMBER if _INT_LIMIT in str(exc) else f"unreadable value: {exc}"
        raise WorkloadError(display, problem) from None
    if safe_yaml.nested_deeper_than(data, MAX_DEPTH):
        raise WorkloadError(display, _too_deep())
    if "\\u" in text or "\\U" in text:  # only an escape can make a lone surrogate
        where = _lone_surrogate(data)
        if where is not None:
            raise WorkloadError(
                display,
                "holds a lone surrogate escape (\\ud800-\\udfff), which is not text; "
                "no report could carry it",
                field=where,
            )
    return data


class DuplicateKey(GoblinError, ValueError):
    """A JSON object that gives one key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r} in one object; give each key once")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a repeated key: ``json`` keeps the last value,
    but a patch edits the first occurrence, so the file would be read one way and
    patched another."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise DuplicateKey(key)
        data[key] = value
    return data


_INT_LIMIT = "integer string conversion"
"""What Python's error says when a number has more digits than ``int`` converts."""
_HUGE_NUMBER = (
    f"a number with more than {sys.get_int_max_str_digits()} digits; no workload setting takes one"
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(data: Any) -> str | None:
    """The dotted key of the first string (key or value) holding a lone surrogate, if any.

    JSON's ``"\\udfff"`` (and YAML's) decodes to a code point UTF-8 cannot encode: every
    report writer and pydantic's JSON would fail on it. Walked without recursion; depth
    is already bounded."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where or None
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    return name
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


def _too_deep() -> str:
    return (
        f"nested more than {MAX_DEPTH} levels deep; a workload is a mapping with a few "
        "nested sections"
    )


def may_hold_workload(path: Path, test_module_globs: Sequence[str]) -> bool:
    """Whether a file met during collection can be a workload worth reading.

    A sidecar belongs to its workload file. A Python file is read only when it
    names a training-arguments class and is not a test module (pytest's own
    collector has those).
    """
    if is_sidecar(path):
        return False
    if path.suffix != ".py":
        return True
    if path.name == "conftest.py" or any(fnmatch.fnmatch(path.name, g) for g in test_module_globs):
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_FILE_BYTES)
    except OSError:
        return False
    return any(name.encode() in head for name in hf_script.ARGS_CALLS)


_MODEL_KEY_LINE = re.compile(
    r"""^\s*["']?(model|model_name|base_model|model_name_or_path)["']?\s*:"""
    r"|_component_[\"']?\s*:\s*[\"']?torchtune\.",
    re.MULTILINE,
)
"""A line that gives a model the way some supported format does, or a torchtune component."""


def looks_like_workload(path: Path) -> bool:
    """Whether a file met in a directory scan, which could not be parsed, was meant as a
    workload: then its error is an item, never silence (a broken config next to good ones
    must not turn the gate green by vanishing).

    A Python file got here because it names a training-arguments class
    (``may_hold_workload``); a YAML or JSON file counts when a line names a model
    (``model:``, ``base_model:``, ``model_name_or_path:`` …) or a torchtune component. A
    file too big, unreadable or not text is left alone, as an unrelated one would be.
    """
    if path.suffix == ".py":
        return True
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_FILE_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return len(text) <= MAX_FILE_BYTES and _MODEL_KEY_LINE.search(text) is not None


def is_workload_data(data: Any, claimed: bool = False) -> bool:
    """Whether parsed content looks like a workload in any supported format.

    ``claimed``: the file is a workload by its name (``goblin_patterns``) or because
    the user named it, so any mapping that names a model counts (see
    ``native.names_a_model``).
    """
    return (
        formats.detect(data) is not None
        or bool(formats.near_misses(data))
        or (claimed and native.names_a_model(data))
    )


def load_workload(path: Path, display: str | None = None) -> Workload:
    """Read and validate one workload file (named by the caller, so claimed)."""
    display = display or str(path)
    text, data = load_data(path, display)
    return parse_workload(path, display, text, data, claimed=True)


def parse_workload(
    path: Path, display: str, text: str, data: Any, claimed: bool = False
) -> Workload:
    """Validate already-loaded content into a Workload, in whichever format it is.

    ``display`` is the path as written; messages and reports show it escaped."""
    written, display = display, printable(display)
    if data is None:
        raise WorkloadError(display, "file is empty")
    fmt = formats.detect(data, path.suffix)
    if fmt is None and claimed and native.names_a_model(data):
        fmt = formats.BY_NAME[native.NAME]
    if fmt is None:
        misses = formats.near_misses(data, path.suffix)
        if misses:
            raise WorkloadError(display, _unknown_keys(misses), field=misses[0][1][0])
        hint = formats.missing_markers(data)
        raise NotAWorkload(f"{display}: {NOT_A_WORKLOAD}" + (f"; {hint}" if hint else ""))
    with _recognised_as(fmt):
        if fmt.read is None:
            _check_native_types(data, display)
            config, settings = native.read(data, display)
            sources = {key: key for key in data if key in WorkloadConfig.model_fields}
            name = config.name
        else:
            reading = fmt.read(data, display, text) if fmt.reads_text else fmt.read(data, display)
            sidecar = load_sidecar(path, display)
            config = build_config(reading, sidecar, path, display)
            settings = sidecar.settings
            # a sidecar value (world_size for a launcher) replaces the file's, source and all
            sources = reading.sources | dict.fromkeys(sidecar.fields, sidecar.display or "")
            name = sidecar.name
    config = config.model_copy(
        update={
            "env_vars": redact_mapping(config.env_vars),
            "extras": redact_mapping(config.extras),
        }
    )
    source = WorkloadSource(
        path=path, display_path=display, relative_path=written, format=fmt.name, text=text
    )
    return Workload(
        name=printable(name) if name else default_name(path),
        config=config,
        settings=settings,
        source=source,
        sources=sources,
    )


def _unknown_keys(misses: list[tuple[Vocabulary, list[str]]]) -> str:
    """Why a file shaped like a strict framework's is none of them: the keys each refuses."""
    parts = [
        f"{vocabulary.framework} refuses {', '.join(keys)} (keys from {vocabulary.source})"
        for vocabulary, keys in misses
    ]
    considered = ", ".join(vocabulary.framework for vocabulary, _ in misses)
    return (
        f"keys of no framework pytest-goblin reads: {'; '.join(parts)}. Considered: "
        f"{considered}; fix the keys, or describe the run as a goblin workload"
    )


def _check_native_types(data: Any, display: str) -> None:
    """Refuse a native field whose value is of another type than the schema's.

    pydantic's lax mode would coerce ``batch_size: true`` to 1, ``seq_len: "2048"`` to
    2048 and ``gradient_checkpointing: "yes"`` to True: a typo would be audited as a
    different workload than the file reads. Our own format has no reason to accept any
    of them (the framework formats follow their framework's parsing instead).
    """
    if not isinstance(data, dict):
        return
    for name, value in data.items():
        if value is None or name not in _STRICT_KINDS:
            continue
        boolean, integer = _STRICT_KINDS[name]
        if boolean and not isinstance(value, bool):
            raise WorkloadError(display, f"expected true or false, got {value!r}", field=name)
        if integer and (isinstance(value, bool) or not isinstance(value, int)):
            raise WorkloadError(display, f"expected an integer, got {value!r}", field=name)


def _strict_kinds() -> dict[str, tuple[bool, bool]]:
    """For each WorkloadConfig field, whether its type admits bool and int: worked out once
    from the schema rather than for every key of every file collection reads."""
    kinds = {}
    for name, info in WorkloadConfig.model_fields.items():
        admitted = {info.annotation} | set(getattr(info.annotation, "__args__", ()))
        kinds[name] = (bool in admitted, int in admitted)
    return kinds


_STRICT_KINDS = _strict_kinds()


@contextmanager
def _recognised_as(fmt: Format) -> Iterator[None]:
    """A WorkloadError raised while reading a file of a known format carries the format,
    so the errored item's report still says what the file is."""
    try:
        yield
    except WorkloadError as exc:
        exc.format = fmt.name
        raise


def build_config(reading: Reading, sidecar: Sidecar, path: Path, display: str) -> WorkloadConfig:
    """A WorkloadConfig from a format's reading plus its sidecar; errors name the user's key.

    A field the file leaves unknown (``reading.unset``) must come from the sidecar,
    and the error says both ways to give it.
    """
    from pydantic import ValidationError

    sidecar_fields = sidecar.fields
    for name, unset in reading.unset.items():
        if name not in sidecar_fields:
            how = f"; set {unset.key}, or give `{name}:`" if unset.settable else ""
            raise WorkloadError(
                display,
                f"{unset.reason}{how} in the sidecar {sidecar_display(display)}",
                field=unset.key,
            )
    check_fills(sidecar, reading.fields, reading.sources, display)
    try:
        config = WorkloadConfig.model_validate({**reading.fields, **sidecar_fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = str(first["loc"][0]) if first["loc"] else None
        message = str(first["msg"]).removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
        if field_name in sidecar_fields and sidecar.display:
            raise WorkloadError(sidecar.display, message, field=field_name) from None
        key = reading.sources.get(field_name or "", field_name)
        raise WorkloadError(display, message, field=key) from None
    if config.model is None:
        origin = reading.sources.get("model_name")
        kind = unsupported(config.model_name) if origin else None
        if kind is not None:
            raise WorkloadError(
                display,
                f"model {config.model_name!r} (from `{origin}`) is {kind}; pytest-goblin "
                "models Llama-style decoders (RMSNorm, rotary attention, a gated MLP), so "
                "this architecture is not supported",
                field=origin,
            )
        named = (
            f"model {config.model_name!r} (from `{origin}`) is not a preset"
            if origin
            else "the file does not name its model"
        )
        raise WorkloadError(display, f"{named}; {sidecar_hint(path)}", field=origin)
    return config


@dataclass(frozen=True)
class PlannedPatch:
    """A patch as the user's file can take it.

    ``changes`` are the ones written into ``text``; ``dropped`` are the ones the
    format cannot express, each with the reason. Benchmarks measure
    ``changes`` only, so what is measured is what the diff gives.
    """

    changes: list[Change]
    dropped: list[tuple[Change, str]]
    text: str
    diff: str


DPO_UNPACKED = (
    "DPO is not packed: axolotl refuses sample_packing with rl: (v0.18.0 "
    "src/axolotl/utils/schemas/validation.py), torchtune's PreferenceDataset refuses packed "
    "(v0.6.1 torchtune/datasets/_preference.py), TRL's DPOConfig has no packing"
)


def plan_patch(workload: Workload, changes: list[Change]) -> PlannedPatch:
    """Write ``changes`` into the user's file, dropping those its format cannot express.

    The edit is checked by reading the edited text back in the same format: a
    change that does not read back as asked is dropped with the reason, and a
    diff that would change anything else is refused.
    """
    source = workload.source
    fmt = formats.BY_NAME[source.format]
    kept = list(changes)
    dropped: list[tuple[Change, str]] = []
    if workload.config.objective == "dpo":
        dropped += [(c, DPO_UNPACKED) for c in kept if c.field == "packing" and c.new]
        kept = [c for c in kept if not (c.field == "packing" and c.new)]
    while kept:
        try:
            edited = _edited(fmt, source, kept)
        except Unpatchable as exc:
            refused = [c for c in kept if c.field == exc.field]
            if not refused:
                raise ValueError(f"{fmt.name} refused {exc.field}, which no change sets") from None
            dropped += [(c, exc.reason) for c in refused]
            kept = [c for c in kept if c.field != exc.field]
            continue
        wrong = _read_back(workload, fmt, edited, kept)
        if not wrong:
            return PlannedPatch(kept, dropped, edited, _diff(source, edited))
        dropped += [(c, why) for c, why in wrong]
        kept = [c for c in kept if all(c is not bad for bad, _ in wrong)]
    return PlannedPatch([], dropped, source.text, "")


def patch_diff(workload: Workload, changes: list[Change]) -> str:
    """A unified diff of the user's own file with every change applied (or a ValueError)."""
    planned = plan_patch(workload, changes)
    if planned.dropped:
        reasons = "; ".join(f"{c.field}: {why}" for c, why in planned.dropped)
        raise ValueError(f"cannot write into {workload.source.display_path}: {reasons}")
    return planned.diff


def _edited(fmt: Format, source: WorkloadSource, changes: list[Change]) -> str:
    new_values = {change.field: change.new for change in changes}
    if fmt.apply is not None:
        return fmt.apply(source.text, source.path.suffix, new_values)
    assert fmt.edits is not None
    data = parse_text(source.text, source.path.suffix, source.display_path)
    edits: list[Edit] = []
    for name, value in new_values.items():
        found = fmt.edits(data, name, value)
        check_vocabulary(fmt, data, name, found)
        edits += found
    return apply_edits(source.text, source.path.suffix, edits)


def _read_back(
    workload: Workload, fmt: Format, edited: str, changes: list[Change]
) -> list[tuple[Change, str]]:
    """The changes that the edited file does not read back as; ValueError for side effects."""
    source = workload.source
    try:
        data = parse_text(edited, source.path.suffix, source.display_path)
        if formats.detect(data, source.path.suffix) is not fmt:
            raise ValueError(
                f"editing {source.display_path} would make it no longer a {fmt.name} file"
            )
        reread = parse_workload(source.path, source.relative_path, edited, data)
    except (WorkloadError, NotAWorkload) as exc:
        raise ValueError(f"the edited file would not read back: {exc}") from None
    reread_config = reread.config.model_dump()
    # validated, so that what a change implies in the schema is expected too (torchtune's
    # activation offloading goes off with checkpointing: WorkloadConfig._resolve)
    expected = apply_changes(workload.config, changes).model_dump()
    wrong = []
    for key in expected:
        if reread_config[key] == expected[key]:
            continue
        culprits = [c for c in changes if c.field.split(".", 1)[0] == key]
        if not culprits:
            raise ValueError(f"editing {source.display_path} would also change {key}")
        wrong += [
            (c, f"the edited file reads back as {key} = {reread_config[key]!r}") for c in culprits
        ]
    return wrong


def _diff(source: WorkloadSource, edited: str) -> str:
    lines = difflib.unified_diff(
        _lines(source.text),
        _lines(edited),
        fromfile=git_quoted(f"a/{source.relative_path}"),
        tofile=git_quoted(f"b/{source.relative_path}"),
    )
    return redact_text(
        "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    )


def _lines(text: str) -> list[str]:
    """Lines as ``patch`` sees them: split after each newline only (not at form feeds)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def apply_changes(config: WorkloadConfig, changes: Iterable[Change]) -> WorkloadConfig:
    """``config`` with each change's dotted field set to its new value, validated again
    (a combination the schema refuses is a pydantic ValidationError, a ValueError)."""
    data = config.model_dump()
    for change in changes:
        _set_path(data, change.field, change.new)
    return WorkloadConfig.model_validate(data)
