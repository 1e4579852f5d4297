"""Editing Python source at syntax-tree positions: only the literal that changes moves.

Edits are collected against the original text (node positions stay valid)
and applied together, last first. A keyword added to a call follows the
call's layout: one per line with the neighbours' indent and trailing comma
when the call is written that way (below the last argument's line comment,
which stays on its line), ``, name=value`` on one line otherwise.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any


class PyText:
    """A script's source and the edits to make to it, applied together by ``result``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._edits: list[tuple[int, int, str]] = []
        self._added: dict[int, list[tuple[str, str]]] = {}
        self._calls: dict[int, ast.Call] = {}
        self._starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
        self._newline = "\r\n" if "\r\n" in text else "\n"

    def offset(self, lineno: int, col: int) -> int:
        """A node position (1-based line, UTF-8 byte column) as an index into the text."""
        start = self._starts[lineno - 1]
        line = self.text[start : self._starts[lineno] if lineno < len(self._starts) else None]
        return start + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def source(self, node: ast.AST) -> str:
        return self.text[self._start(node) : self._end(node)]

    def _start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def _end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def replace(self, node: ast.expr, value: Any) -> None:
        """Write ``value`` where ``node`` is, in the style of what was there."""
        self._edits.append((self._start(node), self._end(node), render(value, self.source(node))))

    def add_keyword(self, call: ast.Call, name: str, value: Any) -> None:
        self._calls[id(call)] = call
        self._added.setdefault(id(call), []).append((name, render(value, None)))

    def add_entry(self, mapping: ast.Dict | ast.Call, key: str, value: Any) -> None:
        """Add ``key`` to a dict literal (``{...}``) or a ``dict(...)`` call."""
        if isinstance(mapping, ast.Call):
            self.add_keyword(mapping, key, value)
            return
        rendered = f"{json.dumps(key)}: {render(value, None)}"
        close = self._end(mapping) - 1
        if mapping.values:
            self._edits.append(
                (self._end(mapping.values[-1]), self._end(mapping.values[-1]), f", {rendered}")
            )
        else:
            self._edits.append((close, close, rendered))

    def add_line_after(self, statement: ast.stmt, line: str) -> None:
        """A new statement on its own line after ``statement``, indented like it."""
        end = self._end(statement)
        indent = " " * statement.col_offset
        self._edits.append((end, end, f"{self._newline}{indent}{line}"))

    def result(self) -> str:
        edits = list(self._edits)
        for key, added in self._added.items():
            edits.append(self._keyword_insertion(self._calls[key], added))
        text = self.text
        for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    def _keyword_insertion(
        self, call: ast.Call, added: list[tuple[str, str]]
    ) -> tuple[int, int, str]:
        arguments: list[ast.expr | ast.keyword] = [*call.args, *call.keywords]
        pairs = [f"{name}={value}" for name, value in added]
        if not arguments:
            opening = self.text.index("(", self._end(call.func))
            return opening + 1, opening + 1, ", ".join(pairs)
        last = max(arguments, key=lambda node: (node.end_lineno or 0, node.end_col_offset or 0))
        at = self._end(last)
        if last.lineno <= (call.func.end_lineno or call.func.lineno):
            return at, at, "".join(f", {pair}" for pair in pairs)
        indent = " " * last.col_offset
        follow = re.match(r"[ \t]*,", self.text[at:])
        if follow:
            at += follow.end()
            at += _comment_length(self.text, at)
            return at, at, "".join(f"{self._newline}{indent}{pair}," for pair in pairs)
        comment = self.text[at : at + _comment_length(self.text, at)]
        joined = f",{self._newline}{indent}".join(pairs)
        return at, at + len(comment), f",{comment}{self._newline}{indent}{joined}"


def _comment_length(text: str, at: int) -> int:
    """The length of a comment that ends the line at ``at`` (0 when there is none).

    A keyword added after the last argument goes after that argument's comment,
    which stays on the line it describes.
    """
    comment = re.match(r"[ \t]*#[^\r\n]*", text[at:])
    return comment.end() if comment else 0


def render(value: Any, old: str | None) -> str:
    """A Python literal for ``value``, quoting strings and spelling dtypes as ``old`` did."""
    if isinstance(value, str):
        if old is not None and old[:1] not in "'\"" and "." in old:
            return old.rsplit(".", 1)[0] + "." + value.rsplit(".", 1)[-1]
        if old is not None and old[:1] == "'" and not old.startswith("'''"):
            return repr(value) if "'" not in value else json.dumps(value, ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        quote = None
        if old and old[:1] in "[(":
            inner = old[1:].lstrip()
            quote = inner[:1] if inner[:1] in "'\"" else None
        return "[" + ", ".join(render(item, quote) for item in value) + "]"
    return repr(value)
