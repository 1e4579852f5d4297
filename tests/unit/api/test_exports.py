"""``pytest_goblin`` re-exports the hook API's types, and loading them waits until they
are used: importing the plugin (what every pytest run does) stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pytest_goblin

HEAVY = ("torch", "anthropic", "huggingface_hub", "transformers", "pydantic", "yaml")


@pytest.mark.parametrize("name", sorted(set(pytest_goblin.__all__) - {"__version__"}))
def test_each_export_is_the_object_of_its_module(name: str) -> None:
    module = importlib.import_module(pytest_goblin._EXPORTS[name])
    assert getattr(pytest_goblin, name) is getattr(module, name)


def test_the_hook_types_are_exported() -> None:
    hook_types = {"Rule", "SessionReport", "Backend", "DeviceRunner", "GoblinSettings"}
    assert hook_types <= set(pytest_goblin.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = pytest_goblin.Nope  # type: ignore[attr-defined]


def test_importing_the_package_and_the_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, pytest_goblin, pytest_goblin.plugin.hooks; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
