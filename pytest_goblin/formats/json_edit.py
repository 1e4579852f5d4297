"""Editing JSON text in place: only the changed values move.

Loading and re-dumping a JSON file would keep its key order but rewrite every
number (``3e-5`` becomes ``3e-05``) and every spacing choice, so a one-value
patch would touch unrelated lines. Instead the text is scanned once for the
span of each value; a changed value replaces its span, and a missing key is
added after the last member of its object, on a line indented like its
siblings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # public, not in typeshed
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


@dataclass
class _Node:
    """A JSON value's span; objects also know their members and closing brace."""

    start: int
    end: int
    members: dict[str, tuple[int, _Node]] = field(default_factory=dict)
    is_object: bool = False


class JsonText:
    """A JSON document; ``set`` edits values, ``text`` gives the document back."""

    def __init__(self, text: str) -> None:
        json.loads(text)
        self._text = text
        self._newline = "\r\n" if "\r\n" in text else "\n"
        unit = re.search(r"\n([ \t]+)\S", text)
        self._unit = unit.group(1) if unit else "  "

    def text(self) -> str:
        return self._text

    def set(self, path: Sequence[str], value: Any) -> None:
        """Give the member at ``path`` the value ``value``, creating objects on the way."""
        node, _ = _parse(self._text, 0)
        for depth, key in enumerate(path):
            if not node.is_object:
                raise ValueError(f"{'.'.join(path[:depth])} is not an object")
            if key not in node.members:
                nested: Any = value
                for inner in reversed(path[depth + 1 :]):
                    nested = {inner: nested}
                self._add_member(node, key, nested)
                return
            node = node.members[key][1]
        self._splice(node.start, node.end, self._render(value, self._line_indent(node.start)))

    def _add_member(self, node: _Node, key: str, value: Any) -> None:
        if not node.members:
            self._splice(
                node.start, node.end, "{" + f"{json.dumps(key)}: " + self._render(value, "") + "}"
            )
            return
        key_start, last = list(node.members.values())[-1]
        between = self._text[node.start : key_start]
        if "\n" in between:
            indent = self._line_indent(key_start)
            separator = f",{self._newline}{indent}"
        else:
            indent, separator = "", ", "
        member = f"{separator}{json.dumps(key, ensure_ascii=False)}: {self._render(value, indent)}"
        self._splice(last.end, last.end, member)

    def _line_indent(self, offset: int) -> str:
        line_start = self._text.rfind("\n", 0, offset) + 1
        line = self._text[line_start:offset]
        return line[: len(line) - len(line.lstrip(" \t"))]

    def _render(self, value: Any, indent: str) -> str:
        if isinstance(value, (dict, list)) and value:
            dumped = json.dumps(value, indent=self._unit, ensure_ascii=False)
            return dumped.replace("\n", self._newline + indent)
        return json.dumps(value, ensure_ascii=False)

    def _splice(self, start: int, end: int, replacement: str) -> None:
        self._text = self._text[:start] + replacement + self._text[end:]


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def _parse(text: str, pos: int) -> tuple[_Node, int]:
    """The value starting at or after ``pos`` (the text is known to be valid JSON)."""
    pos = _skip(text, pos)
    char = text[pos]
    if char == "{":
        node = _Node(start=pos, end=pos, is_object=True)
        pos = _skip(text, pos + 1)
        while text[pos] != "}":
            key_start = pos
            key, pos = scanstring(text, pos + 1)
            pos = _skip(text, pos) + 1
            value, pos = _parse(text, pos)
            node.members[key] = (key_start, value)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
        node.end = pos + 1
        return node, pos + 1
    if char == "[":
        start = pos
        pos = _skip(text, pos + 1)
        while text[pos] != "]":
            _, pos = _parse(text, pos)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
        return _Node(start=start, end=pos + 1), pos + 1
    if char == '"':
        _, end = scanstring(text, pos + 1)
        return _Node(start=pos, end=end), end
    match = _SCALAR.match(text, pos)
    if match is None:
        raise ValueError(f"unexpected JSON at offset {pos}")
    return _Node(start=pos, end=match.end()), match.end()
