"""Reading YAML that nobody vetted: workload files, sidecars and rule packs.

``yaml.safe_load`` already builds plain data only (a ``!!python/object`` tag is
an error, never a constructor call), and libyaml caps nesting at 1,000 levels.
What it allows is an alias bomb ("billion laughs"): nine anchors, each a list of
ten aliases of the one before, load in microseconds as shared objects, but
every walker after the loader (pydantic, redaction, ``json.dumps``) expands them
to a billion values and never returns. So the node graph is measured before
anything is constructed: aliases may repeat a bounded number of nodes, and an
alias inside its own anchor (a recursive structure) is refused.

A key written twice in one mapping is refused too: PyYAML keeps the last value,
but a patch edits the first occurrence, so the file would be read one way and
patched another (and the frameworks themselves disagree about which one wins).

No supported format needs anchors, but people do write them to share a block
(``<<: *defaults``), and that stays well within the bound.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

MAX_ALIAS_NODES: Final = 10_000
"""How many nodes aliases may add to a document beyond the nodes written out."""

_BASE_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: same semantics, much faster."""


class _Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, except that a date which does not exist (``2026-02-30``) stays the
    string it is written as: the schema then refuses it naming its field, where PyYAML
    would raise a bare ValueError out of the constructor."""


def _timestamp(loader: Any, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class UnsafeYaml(yaml.YAMLError):
    """A document whose aliases would expand it beyond reason, or into itself, or that
    gives one key twice."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load(text: str) -> Any:
    """The document's data, as ``yaml.safe_load`` gives it; YAMLError when it is not
    YAML or is an alias bomb (``UnsafeYaml``)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        aliased = "*" in text  # an alias is written *name: without a star there is none
        if aliased:
            _check_aliases(node)
        _check_duplicate_keys(node, shared=aliased)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def describe_error(exc: yaml.YAMLError, label: str = "invalid YAML") -> str:
    """One line for a YAML error: ``invalid YAML at line 3, column 10: did not find …``.

    PyYAML's own text spans several lines and names the input ``"<unicode string>"``;
    workload files, sidecars and rule packs all say where the problem is this way instead.
    """
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{label}{where}: {problem}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a graph whose expanded tree exceeds its distinct nodes by MAX_ALIAS_NODES.

    Walked without recursion (a document may nest 1,000 levels); each distinct
    node's expanded size is computed once, so a bomb is measured, not expanded.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] - len(sizes) > MAX_ALIAS_NODES:
                raise UnsafeYaml(
                    f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?); "
                    "write the repeated values out",
                    node.start_mark,
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise UnsafeYaml(
                "an alias refers to the anchor it is inside (a recursive "
                "structure); workloads are trees",
                node.start_mark,
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _check_duplicate_keys(root: yaml.Node, shared: bool = True) -> None:
    """Refuse a mapping that gives one key twice, naming the key and both lines.

    Walked without recursion and each node once (aliases share nodes; without an alias,
    ``shared`` False, every node is met once anyway and is not remembered). Scalars have
    nothing to check and are not visited. Merge keys (``<<: *defaults``) are YAML's way to
    override a shared block and are not duplicates.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if shared:
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    stack.append(key)
                elif key.tag != _MERGE:
                    earlier = first.setdefault((key.tag, key.value), key)
                    if earlier is not key:
                        raise UnsafeYaml(
                            f"duplicate key {key.value!r} (first at line "
                            f"{earlier.start_mark.line + 1}); give each key once",
                            key.start_mark,
                        )
                if not isinstance(value, yaml.ScalarNode):
                    stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(part for part in node.value if not isinstance(part, yaml.ScalarNode))


_MERGE: Final = "tag:yaml.org,2002:merge"


def nested_deeper_than(data: Any, limit: int) -> bool:
    """Whether lists and mappings in parsed data (YAML or JSON) nest more than ``limit``
    levels. Checked without recursion, so that data too deep for the recursive walkers
    after it (validation, redaction, rule conditions) is refused before they see it."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = (
            value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
