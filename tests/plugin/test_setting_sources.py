"""A bad setting is a usage error that names where it came from: the option, the
environment variable or the ini key and its file, with the value and what is expected."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Setting:
    option: str
    env: str | None
    ini: str | None
    bad: str
    expected: str
    """What follows the source in the message."""


SETTINGS = [
    Setting(
        "--goblin-threshold",
        "GOBLIN_THRESHOLD",
        "goblin_threshold",
        "ten",
        " must be a number, got 'ten'",
    ),
    Setting(
        "--goblin-device",
        "GOBLIN_DEVICE",
        "goblin_device",
        "tpu",
        ": device 'tpu' is not one of auto, cpu, cuda, cuda:N, rocm or rocm:N",
    ),
    Setting(
        "--goblin-max-repeats",
        "GOBLIN_MAX_REPEATS",
        "goblin_max_repeats",
        "0",
        " must be at least 1, got '0'",
    ),
    Setting(
        "--goblin-time-budget",
        "GOBLIN_TIME_BUDGET",
        "goblin_time_budget",
        "soon",
        " must be a number, got 'soon'",
    ),
    Setting(
        "--goblin-compare-fail",
        "GOBLIN_COMPARE_FAIL",
        None,
        "fast",
        " must be a percentage such as 5 or 5%, got 'fast'",
    ),
    Setting(
        "--goblin-backend",
        "GOBLIN_AGENT_BACKEND",
        "goblin_backend",
        "nope",
        ": backend 'nope' is not one of auto, planner, claude, qwen (and no plugin "
        "implements pytest_goblin_make_backend)",
    ),
]


def ids(settings: list[Setting]) -> list[str]:
    return [s.option for s in settings]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def write_ini(pytester: pytest.Pytester, text: str) -> None:
    (pytester.path / "pytest.ini").write_text(f"[pytest]\n{text}\n")


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.stderr.lines, result.stderr.str()


@pytest.mark.parametrize("setting", SETTINGS, ids=ids(SETTINGS))
def test_a_bad_command_line_value_names_the_option(
    pytester: pytest.Pytester, setting: Setting
) -> None:
    result = run(pytester, f"{setting.option}={setting.bad}")
    assert_usage_error(result, f"{setting.option}{setting.expected}")


WITH_ENV = [s for s in SETTINGS if s.env]


@pytest.mark.parametrize("setting", WITH_ENV, ids=ids(WITH_ENV))
def test_a_bad_environment_value_names_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setting: Setting
) -> None:
    assert setting.env is not None
    monkeypatch.setenv(setting.env, setting.bad)
    result = run(pytester)
    assert_usage_error(result, f"{setting.env} (environment){setting.expected}")


WITH_INI = [s for s in SETTINGS if s.ini]


@pytest.mark.parametrize("setting", WITH_INI, ids=ids(WITH_INI))
def test_a_bad_ini_value_names_the_key_and_the_ini_file(
    pytester: pytest.Pytester, setting: Setting
) -> None:
    write_ini(pytester, f"{setting.ini} = {setting.bad}")
    result = run(pytester)
    assert_usage_error(result, f"{setting.ini} in pytest.ini{setting.expected}")


def test_the_ini_file_is_named_as_seen_from_where_pytest_runs(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_ini(pytester, "goblin_threshold = ten")
    monkeypatch.chdir(pytester.mkdir("sub"))
    result = run(pytester)
    assert_usage_error(result, "goblin_threshold in ../pytest.ini must be a number, got 'ten'")


def test_a_pyproject_toml_is_named_too(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ngoblin_max_repeats = "0"\n')
    result = run(pytester)
    assert_usage_error(result, "goblin_max_repeats in pyproject.toml must be at least 1, got '0'")


def test_an_ini_override_on_the_command_line_names_the_o_option(
    pytester: pytest.Pytester,
) -> None:
    write_ini(pytester, "goblin_max_repeats = 3")
    result = run(pytester, "-o", "goblin_max_repeats=0")
    assert_usage_error(result, "-o goblin_max_repeats must be at least 1, got '0'")


def test_the_source_named_is_the_one_that_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_ini(pytester, "goblin_device = gpu")
    monkeypatch.setenv("GOBLIN_DEVICE", "tpu")
    result = run(pytester)
    assert_usage_error(
        result,
        "GOBLIN_DEVICE (environment): device 'tpu' is not one of auto, "
        "cpu, cuda, cuda:N, rocm or rocm:N",
    )


def test_a_bad_simulated_device_names_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOBLIN_FAKE_DEVICE", "tpu9")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: GOBLIN_FAKE_DEVICE (environment): unknown device 'tpu9'; valid devices: *mi300x*"]
    )


def test_an_unknown_ignored_rule_names_the_ini_file(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "goblin_ignore = flash-atention")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: goblin_ignore in pytest.ini: unknown rule id 'flash-atention'*"]
    )
