"""Editing YAML text in place, line by line: comments, order and layout stay.

A round-trip YAML library re-emits the whole document (and is one more
dependency); a patch only needs a few values changed. This editor finds the
line that holds a key, rewrites just its value (keeping the trailing comment
and the value's quoting and boolean spelling), and inserts a missing key next
to a related one. Nested keys (``optimizer.fused`` in torchtune's blocks,
``env_vars.X``) are found by indentation. Callers re-read the edited text to
check that it says what they meant: the editor handles the YAML people write
in config files, not every corner of the spec.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

_BOOL_TOKENS = frozenset({"true", "false", "yes", "no", "on", "off"})


@dataclass(frozen=True)
class _Entry:
    """A key's line and the lines that belong to it (its block)."""

    index: int
    indent: int
    end: int
    value: str
    comment: str


class YamlText:
    """A YAML document as lines; ``set`` edits values, ``text`` gives the document back."""

    def __init__(self, text: str) -> None:
        self._crlf = "\r\n" in text
        body = text.replace("\r\n", "\n")
        self._final_newline = body.endswith("\n") or not body
        self.lines = body.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        capitalised = len(re.findall(r":[ \t]+(?:True|False)\b", body))
        lower = len(re.findall(r":[ \t]+(?:true|false)\b", body))
        self._capital_bools = capitalised > lower
        self._unit = _indent_unit(self.lines)

    def text(self) -> str:
        edited = "".join(self.lines)
        if not self._final_newline:
            edited = edited.removesuffix("\n")
        return edited.replace("\n", "\r\n") if self._crlf else edited

    def set(
        self,
        path: Sequence[str],
        value: Any,
        *,
        after: Sequence[str] = (),
        before: str | None = None,
        quote: bool = False,
    ) -> None:
        """Give ``path`` (top-level key first) the value ``value``.

        A missing top-level key goes after the first of ``after`` that exists,
        else before the top-level key ``before`` (and the blank lines above
        it), else after the last entry. A missing nested key goes at the end
        of its parent's block. ``quote`` writes strings in double quotes.
        """
        self._set(list(path), value, 0, len(self.lines), 0, after, before, quote)

    # --- locating --------------------------------------------------------------------

    def _find(self, key: str, start: int, end: int, indent: int) -> int | None:
        pattern = re.compile(
            rf"^[ \t]{{{indent}}}(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
            r"[ \t]*:(?:[ \t]|$)"
        )
        return next(
            (i for i in range(start, end) if pattern.match(self.lines[i].rstrip("\n"))), None
        )

    def _entry(self, index: int) -> _Entry:
        line = self.lines[index].rstrip("\n")
        indent = _indent(line)
        rest = line[_colon(line) + 1 :]
        value, comment = _split_comment(rest)
        last = index
        for j in range(index + 1, len(self.lines)):
            stripped = self.lines[j].strip()
            if not stripped or stripped.startswith("#"):
                continue
            depth = _indent(self.lines[j])
            sequence_item = depth == indent and not value.strip() and stripped.startswith("-")
            closing = (
                depth == indent and stripped[0] in "]}" and value.strip().startswith(("[", "{"))
            )
            if depth > indent or sequence_item or closing:
                last = j
                continue
            break
        return _Entry(index=index, indent=indent, end=last + 1, value=value, comment=comment)

    def _child_indent(self, start: int, end: int) -> int | None:
        for i in range(start, end):
            stripped = self.lines[i].strip()
            if stripped and not stripped.startswith("#"):
                return _indent(self.lines[i])
        return None

    def _top_level_end(self) -> int:
        """One past the last line of the last top-level entry."""
        last = 0
        for i, line in enumerate(self.lines):
            if line.strip() and not line.lstrip().startswith("#"):
                last = i + 1
        return last

    # --- editing ---------------------------------------------------------------------

    def _set(
        self,
        path: list[str],
        value: Any,
        start: int,
        end: int,
        indent: int,
        after: Sequence[str],
        before: str | None,
        quote: bool,
    ) -> None:
        key, rest = path[0], path[1:]
        index = self._find(key, start, end, indent)
        if index is None:
            at = self._insertion_point(start, end, indent, after, before)
            self.lines[at:at] = self._new_lines(path, value, indent, quote)
            return
        entry = self._entry(index)
        if not rest:
            self._replace(entry, value, quote)
            return
        flow = entry.value.strip()
        if flow.startswith("{"):
            self._set_in_flow(entry, rest, value, quote)
            return
        if flow and flow not in ("~", "null"):
            raise ValueError(f"{key} holds a value, not a mapping: cannot set {'.'.join(path)}")
        if flow:
            self._replace(entry, None, quote, blank=True)
        child = self._child_indent(index + 1, entry.end)
        if child is None:
            self.lines[index + 1 : index + 1] = self._new_lines(
                rest, value, entry.indent + self._unit, quote
            )
            return
        self._set(rest, value, index + 1, entry.end, child, (), None, quote)

    def _insertion_point(
        self, start: int, end: int, indent: int, after: Sequence[str], before: str | None
    ) -> int:
        for anchor in after:
            index = self._find(anchor, start, end, indent)
            if index is not None:
                return self._entry(index).end
        if start == 0 and before is not None:
            index = self._find(before, 0, end, 0)
            if index is not None:
                while index > 0 and not self.lines[index - 1].strip():
                    index -= 1
                return index
        if start == 0:
            return self._top_level_end()
        last = start
        for i in range(start, end):
            if self.lines[i].strip():
                last = i + 1
        return last

    def _new_lines(self, path: list[str], value: Any, indent: int, quote: bool) -> list[str]:
        pad = " " * indent
        if len(path) == 1:
            return [f"{pad}{path[0]}: {self._render(value, None, quote)}\n"]
        return [f"{pad}{path[0]}:\n", *self._new_lines(path[1:], value, indent + self._unit, quote)]

    def _replace(self, entry: _Entry, value: Any, quote: bool, blank: bool = False) -> None:
        line = self.lines[entry.index].rstrip("\n")
        head = line[: _colon(line) + 1]
        old = entry.value.strip()
        rendered = "" if blank else self._render(value, old or None, quote)
        del self.lines[entry.index + 1 : entry.end]
        gap = entry.value[: len(entry.value) - len(entry.value.lstrip())] or " "
        comment = entry.comment
        if not old and comment and not comment[:1].isspace():
            comment = " " + comment
        self.lines[entry.index] = f"{head}{gap if rendered else ''}{rendered}{comment}\n"

    def _set_in_flow(self, entry: _Entry, rest: list[str], value: Any, quote: bool) -> None:
        if entry.end != entry.index + 1:
            raise ValueError("multi-line flow mappings are not edited in place")
        mapping = yaml.safe_load(entry.value.strip()) or {}
        node = mapping
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = value
        self._replace(entry, mapping, quote=True)

    # --- rendering -------------------------------------------------------------------

    def _render(self, value: Any, old: str | None, quote: bool) -> str:
        if isinstance(value, bool):
            capital = (
                old[0].isupper() if old and old.lower() in _BOOL_TOKENS else (self._capital_bools)
            )
            word = "true" if value else "false"
            return word.capitalize() if capital else word
        if isinstance(value, dict):
            body = ", ".join(f"{k}: {self._render(v, None, quote)}" for k, v in value.items())
            return "{" + body + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(self._render(v, None, quote) for v in value) + "]"
        if isinstance(value, str):
            quote_char = old[0] if old and old[0] in "'\"" else ('"' if quote else None)
            if quote_char == "'":
                return "'" + value.replace("'", "''") + "'"
            if quote_char == '"':
                return _json_string(value)
        return _plain(value)


def _plain(value: Any) -> str:
    if value is None or isinstance(value, (str, int)):
        return _plain_scalar(value)
    return _dumped(value)


@functools.lru_cache(maxsize=512, typed=True)
def _plain_scalar(value: str | int | None) -> str:
    """A string, integer or null as PyYAML writes it, remembered: the emitter costs more
    than the rest of an edit, and patches write the same few rule values into many files.
    (Floats are not remembered: 0.0 and -0.0 are equal keys but are written apart.)"""
    return _dumped(value)


def _dumped(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return dumped.strip().removesuffix("...").strip()


def _json_string(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _colon(line: str) -> int:
    """Index of the colon that ends the key (keys may be quoted)."""
    stripped = line.lstrip(" \t")
    offset = len(line) - len(stripped)
    if stripped[:1] in "'\"":
        close = stripped.index(stripped[0], 1)
        return offset + stripped.index(":", close)
    return offset + stripped.index(":")


def _split_comment(rest: str) -> tuple[str, str]:
    """A key's value text and its trailing comment (with the spaces before it)."""
    if rest.strip().startswith("#"):
        return "", rest
    quote: str | None = None
    for i, char in enumerate(rest):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and (i == 0 or rest[i - 1] in " \t[{,:"):
            quote = char
        elif char == "#" and i > 0 and rest[i - 1] in " \t":
            value = rest[:i].rstrip(" \t")
            return value, rest[len(value) :]
    return rest.rstrip(" \t"), ""


def _indent_unit(lines: list[str]) -> int:
    """The document's indentation step (2 when nothing is indented)."""
    depths = sorted(
        {
            _indent(line)
            for line in lines
            if line.strip() and not line.lstrip().startswith(("#", "-"))
        }
        - {0}
    )
    return depths[0] if depths else 2
