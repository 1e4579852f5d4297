"""``--goblin-engine``: which engine ``auto``, ``hf`` and ``native`` resolve to, and the
summary header naming the engine that measured (no torch: the plugin resolves it at start)."""

from __future__ import annotations

import pytest

from pytest_goblin.report.terminal import header_line
from pytest_goblin.runner import engines
from pytest_goblin.runner.engines import resolve_engine
from pytest_goblin.schemas import DeviceInfo


@pytest.mark.parametrize(("missing", "auto"), [([], "hf"), (["peft"], "native")])
def test_auto_is_hf_when_its_extra_is_installed_else_native(
    monkeypatch: pytest.MonkeyPatch, missing: list[str], auto: str
) -> None:
    monkeypatch.setattr(engines, "hf_missing", lambda: missing)
    assert resolve_engine("auto") == auto
    assert resolve_engine(" Native ") == "native"


def test_hf_without_its_extra_names_what_is_missing_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "hf_missing", lambda: ["transformers", "peft"])
    with pytest.raises(ValueError, match=r"transformers, peft: pip install 'pytest-goblin\[hf\]'"):
        resolve_engine("hf")


def test_an_unknown_engine_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'trl' is not one of auto, hf, native"):
        resolve_engine("trl")


def test_the_summary_header_names_the_engine_of_measured_numbers_only() -> None:
    device = DeviceInfo(kind="cpu", name="AMD EPYC", platform="cpu", engine="hf")
    assert "device: AMD EPYC | engine: hf | backend: planner" in header_line(
        device, "planner", 0.1, fake=False
    )
    assert "engine" not in header_line(device, "planner", 0.1, fake=True)
