"""What a Python training script says, read from its syntax tree (never run).

A keyword's value is resolved the way a reader would: a literal is itself; a
name is the literal it was assigned (once, anywhere in the script, also by
unpacking ``a, b = "x", "y"``), so ``attn_implementation=ATTENTION`` reads
``ATTENTION = "eager"``; ``**ARGS`` splats a dict literal (``{...}`` or
``dict(...)``); ``torch.bfloat16`` is a dtype. Each resolved value remembers
the node that holds it, so a patch edits that literal, wherever it is.
``torch.cuda.is_bf16_supported()`` and unsloth's ``is_bfloat16_supported()`` (its notebooks
write ``fp16 = not is_bfloat16_supported(), bf16 = is_bfloat16_supported()``) are known (True
on every GPU audited) but, being expressions, are never edited.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

_BF16_PROBES = ("is_bf16_supported", "is_bfloat16_supported")
"""torch's and unsloth's bf16 capability checks (unsloth v0.1.801-beta
``unsloth/models/_utils.py``: ``is_bfloat16_supported`` returns ``SUPPORTS_BFLOAT16``)."""


@dataclass(frozen=True)
class Value:
    """A resolved expression: its value, whether it is known and editable, and where."""

    value: Any
    known: bool
    node: ast.expr | None
    """The literal node that holds the value (what a patch edits); None for expressions."""
    text: str
    line: int


def short_name(func: ast.expr) -> str:
    """``transformers.TrainingArguments`` → ``TrainingArguments``."""
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def dotted(node: ast.expr) -> str | None:
    """``torch.cuda.is_available`` as a string, for attribute chains of names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _bindings(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    """The names an assignment binds and the expression each receives.

    ``model_id, output_dir = "Qwen/…", "out"`` (notebooks choose a model this
    way) binds each name to its element. A name unpacked from anything else
    (``a, b = f()``, a starred target) is bound to an expression that never
    resolves, so it counts as assigned without a known value.
    """
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if not isinstance(target, (ast.Tuple, ast.List)):
        return []
    if (
        isinstance(value, (ast.Tuple, ast.List))
        and len(value.elts) == len(target.elts)
        and not any(isinstance(node, ast.Starred) for node in (*target.elts, *value.elts))
    ):
        return [
            pair
            for element, item in zip(target.elts, value.elts, strict=True)
            for pair in _bindings(element, item)
        ]
    unknown = ast.copy_location(ast.Name(id="<unpacked>", ctx=ast.Load()), value)
    return [
        pair
        for element in target.elts
        for pair in _bindings(
            element.value if isinstance(element, ast.Starred) else element, unknown
        )
    ]


class Script:
    """A parsed script: its calls in source order and its single-assignment names."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.calls = sorted(
            (node for node in ast.walk(tree) if isinstance(node, ast.Call)),
            key=lambda node: (node.lineno, node.col_offset),
        )
        assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for name, value in _bindings(target, node.value):
                        assigned.setdefault(name, []).append(value)
            elif (
                isinstance(node, (ast.AnnAssign, ast.AugAssign))
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
                assigned.setdefault(node.target.id, []).append(node.value)
        self.names = {name: values[0] for name, values in assigned.items() if len(values) == 1}
        """Names assigned exactly once: their value is unambiguous."""

    def calls_named(self, *names: str) -> list[ast.Call]:
        return [call for call in self.calls if short_name(call.func) in names]

    def resolve(self, node: ast.expr, depth: int = 0) -> Value:
        text = ast.unparse(node)
        unknown = Value(None, False, None, text, node.lineno)
        if depth > 10:
            return unknown
        if isinstance(node, ast.Name):
            target = self.names.get(node.id)
            if target is None:
                return unknown
            inner = self.resolve(target, depth + 1)
            return Value(inner.value, inner.known, inner.node, text, inner.line)
        name = dotted(node) if isinstance(node, ast.Attribute) else None
        if name and name.startswith("torch."):
            return Value(name, True, node, text, node.lineno)
        if isinstance(node, ast.Call) and short_name(node.func) in _BF16_PROBES:
            return Value(True, True, None, text, node.lineno)
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.Not)
            and isinstance(node.operand, ast.Call)
            and short_name(node.operand.func) in _BF16_PROBES
        ):
            return Value(False, True, None, text, node.lineno)
        if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
            entries = {
                key.value: self.resolve(value, depth + 1)  # type: ignore[union-attr]
                for key, value in zip(node.keys, node.values, strict=True)
            }
            known = all(entry.known for entry in entries.values())
            value = {key: entry.value for key, entry in entries.items()} if known else None
            return Value(value, known, node if known else None, text, node.lineno)
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return unknown
        return Value(value, True, node, text, node.lineno)

    def keywords(self, call: ast.Call) -> dict[str, Value]:
        """A call's keyword arguments, ``**splats`` of dict literals included.

        Explicit keywords win over splatted ones (Python itself refuses both).
        """
        found: dict[str, Value] = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                for key, value in self.splat(keyword.value).items():
                    found.setdefault(key, value)
        for keyword in call.keywords:
            if keyword.arg is not None:
                found[keyword.arg] = self.resolve(keyword.value)
        return found

    def splat(self, node: ast.expr) -> dict[str, Value]:
        """The entries of a dict literal (or ``dict(...)`` call) behind ``node``."""
        if isinstance(node, ast.Name) and node.id in self.names:
            node = self.names[node.id]
        if isinstance(node, ast.Dict):
            return {
                key.value: self.resolve(value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            }
        if isinstance(node, ast.Call) and short_name(node.func) == "dict" and not node.args:
            return self.keywords(node)
        return {}

    def dict_literal(self, node: ast.expr) -> ast.Dict | ast.Call | None:
        """The dict literal (``{...}`` or ``dict(...)``) behind a keyword value, if any."""
        if isinstance(node, ast.Name) and node.id in self.names:
            node = self.names[node.id]
        if isinstance(node, ast.Dict) or (
            isinstance(node, ast.Call) and short_name(node.func) == "dict"
        ):
            return node
        return None
