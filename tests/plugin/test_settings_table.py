"""Each setting is declared once, and that declaration is what pytest, the environment
and docs/options.md see: every option and ini key is registered, every variable is read,
the older variable names still work."""

from __future__ import annotations

from dataclasses import fields

import pytest

from pytest_goblin import docgen
from pytest_goblin.plugin.settings import BY_NAME, SETTINGS, GoblinSettings


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def test_every_field_but_the_derived_ones_is_a_declared_setting() -> None:
    derived = {"invocation_dir", "sources"}
    assert {f.name for f in fields(GoblinSettings)} - derived == set(BY_NAME)


def test_names_follow_one_pattern() -> None:
    for spec in SETTINGS:
        stem = spec.stem.replace("-", "_")
        if spec.option_name is not None:
            assert spec.option_name == f"--goblin-{spec.stem}".rstrip("-")
        if spec.ini_name is not None:
            assert spec.ini_name == f"goblin_{stem}"
        if spec.env_names and spec.env_names[0].startswith("GOBLIN_"):
            assert spec.env_names[0] in (f"GOBLIN_{stem.upper()}", *spec.env_aliases)


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("threshold", "GOBLIN_THRESHOLD"),
        ("backend", "GOBLIN_AGENT_BACKEND"),
        ("fake", "GOBLIN_FAKE"),
        ("fake_device", "GOBLIN_FAKE_DEVICE"),
        ("device", "GOBLIN_DEVICE"),
        ("base_url", "GOBLIN_QWEN_BASE_URL"),
    ],
)
def test_the_documented_variable_names_are_kept(name: str, variable: str) -> None:
    assert variable in BY_NAME[name].env_names


def test_pytest_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for spec in SETTINGS:
        for name in (spec.option_name, spec.ini_name):
            assert name is None or name in text, name


def test_the_options_page_lists_every_setting_where_it_can_be_written() -> None:
    page = docgen.render("options.md")
    for spec in SETTINGS:
        for name in (spec.option_name, spec.ini_name, *spec.env_names):
            assert name is None or f"`{name}" in page, name


def test_a_variable_added_by_the_table_is_read(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOBLIN_LOSS_TOLERANCE", "-1")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: GOBLIN_LOSS_TOLERANCE (environment) must be above 0, got '-1'" in (
        result.stderr.lines
    )


def test_an_on_off_variable_says_what_it_accepts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOBLIN_STRICT", "maybe")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: GOBLIN_STRICT (environment) must be one of 1, true, yes, on, 0, false, no, "
        "off; got 'maybe'" in result.stderr.lines
    )


@pytest.mark.parametrize("variable", ["GOBLIN_BACKEND", "GOBLIN_AGENT_BACKEND"])
def test_the_new_and_the_older_backend_variable_both_work(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "nope")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {variable} (environment): backend 'nope' is not one*"])


def test_the_environment_beats_the_ini_and_the_command_line_beats_both(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ngoblin_threshold = 0.5\n")
    pytester.makeconftest(
        """
        from pytest_goblin.plugin.config import settings_of

        def pytest_terminal_summary(terminalreporter, config):
            settings = settings_of(config)
            terminalreporter.write_line(
                f"THRESHOLD {settings.threshold} {settings.source('threshold')}"
            )
        """
    )
    assert "THRESHOLD 0.5 goblin_threshold in tox.ini" in run(pytester).stdout.lines
    monkeypatch.setenv("GOBLIN_THRESHOLD", "0.25")
    assert "THRESHOLD 0.25 GOBLIN_THRESHOLD (environment)" in run(pytester).stdout.lines
    lines = run(pytester, "--goblin-threshold=0.3").stdout.lines
    assert "THRESHOLD 0.3 --goblin-threshold" in lines
