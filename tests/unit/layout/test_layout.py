"""The layout's rules, checked on the source: only the plugin package imports pytest,
every error is a GoblinError, and the layers import downwards only.

The rules are read from each module's syntax tree (function-local and type-checking
imports included), so a module that breaks one fails here without being imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from helpers.paths import REPO

SOURCES = {"pytest_goblin": REPO / "pytest_goblin", "pytest_goblin.kb": REPO / "kb"}
SOURCES["pytest_goblin.runner"] = REPO / "runner"


def modules() -> Iterator[tuple[str, ast.Module]]:
    """Every module of the installed package, by its import name, with its syntax tree."""
    for package, root in SOURCES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join([package, *parts]), ast.parse(path.read_text(encoding="utf-8"))


MODULES = dict(modules())


def imported(tree: ast.Module) -> set[str]:
    """The modules ``tree`` imports anywhere (``from a import b`` counts as a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_at_run_time(tree: ast.Module) -> set[str]:
    """What ``imported`` finds outside ``if TYPE_CHECKING:`` blocks (annotations only)."""
    checking = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    hidden: set[str] = set()
    for block in checking:
        hidden |= imported(ast.Module(body=block.body, type_ignores=[]))
    return imported(tree) - hidden


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_package_is_found() -> None:
    for name in (
        "pytest_goblin.schemas",
        "pytest_goblin.kb.loader",
        "pytest_goblin.runner.analytic",
    ):
        assert name in MODULES


def test_only_the_plugin_package_imports_pytest() -> None:
    offenders = sorted(
        name
        for name, tree in MODULES.items()
        if not within(name, "pytest_goblin.plugin")
        and any(within(m, "pytest") or within(m, "_pytest") for m in imported(tree))
    )
    assert offenders == [], f"import pytest only under pytest_goblin/plugin/: {offenders}"


BUILTIN_ERRORS = {
    "Exception",
    "ValueError",
    "RuntimeError",
    "TypeError",
    "KeyError",
    "LookupError",
    "OSError",
}
NOT_GOBLIN = {"WorkloadFailed"}
"""An item's failure, raised for pytest to report: an AssertionError by pytest's rule."""


def test_every_error_the_package_defines_is_a_goblin_error() -> None:
    classes = {
        node.name: {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
        for tree in MODULES.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    goblin = {"GoblinError"}
    while True:
        more = {name for name, bases in classes.items() if bases & goblin} - goblin
        if not more:
            break
        goblin |= more
    errors = {name for name, bases in classes.items() if bases & BUILTIN_ERRORS}
    strays = sorted(
        name
        for name in errors - goblin - NOT_GOBLIN
        if not name.startswith("_") and name != "GoblinError"
    )
    assert strays == [], f"derive these from pytest_goblin.errors.GoblinError: {strays}"


LAYERS = [
    ("pytest_goblin.schemas", "pytest_goblin.runner", "the schemas sit below the runner"),
    ("pytest_goblin.catalogue", "pytest_goblin.runner", "the catalogues are data below it"),
    ("pytest_goblin.verdict", "pytest_goblin.report", "a verdict is decided, not rendered"),
    ("pytest_goblin.verdict", "pytest_goblin.plugin", "the verdict knows no pytest"),
    ("pytest_goblin.audit", "pytest_goblin.agent.tools", "the audit does not reach into tools"),
    ("pytest_goblin.audit", "pytest_goblin.plugin", "the audit runs without pytest's plugin"),
    ("pytest_goblin.kb", "pytest_goblin.agent", "rules know nothing of the agent"),
]
TORCH_SIDE = [
    "pytest_goblin.runner.optimizers",
    "pytest_goblin.runner.training",
    "pytest_goblin.runner.model",
    "pytest_goblin.runner.hf_engine",
    "pytest_goblin.runner.data",
]
LAYERS += [(module, "pytest_goblin.runner.analytic", "torch code") for module in TORCH_SIDE]


def test_no_two_modules_share_a_name() -> None:
    stems = [
        path.stem
        for root in SOURCES.values()
        for path in root.rglob("*.py")
        if path.name != "__init__.py"
    ]
    shared = sorted({stem for stem in stems if stems.count(stem) > 1})
    assert shared == [], f"one name, two modules: {shared}"


@pytest.mark.parametrize(("lower", "upper", "why"), LAYERS, ids=[f"{a}-{b}" for a, b, _ in LAYERS])
def test_layers_import_downwards(lower: str, upper: str, why: str) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, tree in MODULES.items()
        if within(name, lower)
        for target in imported(tree)
        if within(target, upper)
    )
    assert offenders == [], f"{why}: {offenders}"


def test_reporters_import_no_plugin_code_at_run_time() -> None:
    # The plugin hands reporters its settings (``SessionReport``); they name the type
    # for annotations only, so rendering a report needs neither pytest nor the hooks.
    offenders = sorted(
        f"{name} imports {target}"
        for name, tree in MODULES.items()
        if within(name, "pytest_goblin.report")
        for target in imported_at_run_time(tree)
        if within(target, "pytest_goblin.plugin")
    )
    assert offenders == [], f"import plugin types under TYPE_CHECKING: {offenders}"
