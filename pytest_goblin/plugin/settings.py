"""One settings object, built once from command line, environment and ini.

Each setting is declared once, as a field of :class:`GoblinSettings` made by
:func:`setting`: its type, default, help, option, ini key, environment variables and
group. That declaration (:data:`SETTINGS`) drives ``addoption``, ``addini``, the
resolution in :func:`build` and the generated ``docs/options.md``.

Precedence is command line, then environment, then ini, then the default —
pytest-timeout's way. The option ``--goblin-<key>`` has the ini key ``goblin_<key>``
and the variable ``GOBLIN_<KEY>`` (a few older variable names are kept beside it). A
bad value is a usage error that names where it came from. A relative path is relative
to where pytest runs when it comes from the command line or the environment, and to
the ini file's directory when it comes from the ini file (pytest's rule for its own
``paths`` values). The object lives in ``config.stash[SETTINGS_KEY]``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_goblin.runner.engines import resolve_engine
from pytest_goblin.runner.options import DEFAULT_TIMEOUT_S, DEFAULT_WARMUP, parse_selector

BACKENDS = ("auto", "planner", "claude", "qwen")
DEFAULT_PATTERNS = ("*.goblin.yaml", "*.goblin.yml", "*.goblin.json")
DEFAULT_THRESHOLD = 0.10
DEFAULT_FAKE_DEVICE = "mi300x"
DEFAULT_MAX_REPEATS = 10
DEFAULT_LOSS_TOLERANCE = 0.05
DEFAULT_STORAGE = ".goblin"
DEFAULT_BACKEND_TIMEOUT_S = 120.0
"""The claude and qwen backends' own request timeout (their SDK clients' ``timeout``)."""

Kind = Literal["value", "flag", "optional", "list", "paths"]
"""How a setting is written. ``value``: one string, parsed. ``flag``: on/off (a bare
option; ``true``/``false`` in the ini; ``1``/``0``, ``yes``/``no``… in the environment).
``optional``: an option whose value may be left out (``--goblin-save``). ``list``: ini
words (and shell words in the environment). ``paths``: directories added from every
source (a repeatable option, the ini key and the variable), not one picked by
precedence."""


@dataclass(frozen=True)
class Raw:
    """A setting as the user wrote it, and where, so that an error names the place to fix."""

    value: Any
    source: str
    """``--goblin-device``, ``GOBLIN_DEVICE (environment)``, ``goblin_device in pytest.ini``
    or ``-o goblin_device``."""
    base: Path | None = None
    """The directory a relative path in an ini value is relative to; None: where pytest runs."""


Parse = Callable[[Raw, pytest.Config], Any]
"""Turns what the user wrote into the field's value; raises ``pytest.UsageError`` naming
``raw.source`` when the value is bad."""


@dataclass(frozen=True)
class Setting:
    """One setting's declaration: where it can be written, how it is read, how it is shown."""

    help: str
    group: str
    """The heading it sits under in ``docs/options.md``."""
    kind: Kind = "value"
    key: str | None = None
    """The ``<key>`` of ``--goblin-<key>``, ``goblin_<key>`` and ``GOBLIN_<KEY>``; None:
    the field name with ``-`` for ``_``. Empty: the bare ``--goblin``."""
    option: bool = True
    ini: bool = True
    env: bool = True
    env_aliases: tuple[str, ...] = ()
    """Older variable names, read after ``GOBLIN_<KEY>``."""
    parse: Parse | None = None
    """None: the value as written (a string, a bool, a tuple of words)."""
    metavar: str | None = None
    const: str | None = None
    """An ``optional`` option's value when it is given bare."""
    shown_default: str | None = None
    """The default as help and docs state it; None: the field's default, when not None."""
    name: str = ""
    """The field name (filled in from the dataclass)."""
    default: Any = None
    """The field's default (filled in from the dataclass)."""

    @property
    def stem(self) -> str:
        return self.name.replace("_", "-") if self.key is None else self.key

    @property
    def option_name(self) -> str | None:
        if not self.option:
            return None
        return f"--goblin-{self.stem}" if self.stem else "--goblin"

    @property
    def dest(self) -> str:
        """The attribute of ``config.option`` the option is stored in."""
        return f"goblin_{self.stem}".replace("-", "_").rstrip("_")

    @property
    def ini_name(self) -> str | None:
        return f"goblin_{self.stem.replace('-', '_')}" if self.ini else None

    @property
    def env_names(self) -> tuple[str, ...]:
        own = (f"GOBLIN_{self.stem.replace('-', '_').upper()}",) if self.env else ()
        return own + self.env_aliases

    @property
    def default_text(self) -> str | None:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.kind == "flag":
            return None
        if isinstance(self.default, (tuple, frozenset)):
            return " ".join(sorted(map(str, self.default))) or None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


_SPEC = "goblin.setting"


def setting(default: Any, help: str, group: str, **declaration: Any) -> Any:
    """A :class:`GoblinSettings` field declared with its :class:`Setting` (see its fields).

    Typed ``Any`` so that the field's annotation, not this call, is its type.
    """
    spec = Setting(help=help, group=group, **declaration)
    return field(default=default, metadata={_SPEC: spec})


# ---------------------------------------------------------------- parsers


def _parse_number(
    raw: Raw, kind: type[int] | type[float], minimum: float, inclusive: bool = True
) -> Any:
    try:
        value = kind(str(raw.value).strip())
    except ValueError:
        raise pytest.UsageError(f"{raw.source} must be a number, got {raw.value!r}") from None
    if value < minimum or (value == minimum and not inclusive):
        bound = f"at least {minimum:g}" if inclusive else f"above {minimum:g}"
        raise pytest.UsageError(f"{raw.source} must be {bound}, got {raw.value!r}")
    return value


def _count(minimum: int) -> Parse:
    return lambda raw, config: _parse_number(raw, int, minimum)


def _positive(raw: Raw, config: pytest.Config) -> float:
    return float(_parse_number(raw, float, minimum=0, inclusive=False))


def _parse_threshold(raw: Raw, config: pytest.Config) -> float:
    try:
        value = float(str(raw.value))
    except ValueError:
        raise pytest.UsageError(f"{raw.source} must be a number, got {raw.value!r}") from None
    from pytest_goblin.schemas import MAX_THRESHOLD

    if not 0 < value <= MAX_THRESHOLD:  # nan and inf fail this too
        raise pytest.UsageError(
            f"{raw.source} must be a fraction above 0 and at most {MAX_THRESHOLD:g} "
            f"(0.10 = 10%; a larger bar never fails a workload), got {raw.value!r}"
        )
    return value


def _parse_percent(raw: Raw, config: pytest.Config) -> float:
    try:
        value = float(str(raw.value).strip().removesuffix("%"))
    except ValueError:
        raise pytest.UsageError(
            f"{raw.source} must be a percentage such as 5 or 5%, got {raw.value!r}"
        ) from None
    if not 0 < value < 100:
        raise pytest.UsageError(f"{raw.source} must be between 0 and 100, got {raw.value!r}")
    return value


def _parse_device(raw: Raw, config: pytest.Config) -> str:
    device = str(raw.value)
    try:
        parse_selector(device)
    except ValueError as exc:
        raise pytest.UsageError(f"{raw.source}: {exc}") from None
    return device.strip().lower()


def _parse_engine(raw: Raw, config: pytest.Config) -> str:
    try:
        resolve_engine(str(raw.value))
    except ValueError as exc:
        raise pytest.UsageError(f"{raw.source}: {exc}") from None
    return str(raw.value).strip().lower()


def _lower(raw: Raw, config: pytest.Config) -> str:
    return str(raw.value).lower()


def _path(raw: Raw, config: pytest.Config | None = None) -> Path:
    """A path setting: from the command line or the environment relative to where pytest
    runs (the reports join it to ``invocation_dir``), from the ini file relative to it."""
    return Path(raw.value) if raw.base is None else raw.base / str(raw.value)


def _markdown_target(raw: Raw, config: pytest.Config) -> str:
    """``-`` (stdout) stays as it is; anything else is a path like ``_path``'s."""
    value = str(raw.value)
    return value if value == "-" else str(_path(raw))


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _run_name(raw: Raw, config: pytest.Config) -> str:
    """A saved run's name is a plain file-name part; a path here means the option ate one."""
    name = str(raw.value)
    if name == "":
        return name
    option = raw.source
    if option.startswith("--") and _ate_a_path(name, option, config):
        raise pytest.UsageError(
            f"{option}: {name!r} is a path here, and a bare {option} takes the next argument "
            f"as its run name; write {option}=NAME"
        )
    if not RUN_NAME.fullmatch(name):
        raise pytest.UsageError(
            f"{option}: {name!r} is not a run name (letters, digits, '.', '_', '-'); a bare "
            f"{option} takes the next argument as its name, so write {option}=NAME"
            if option.startswith("--")
            else f"{option}: {name!r} is not a run name (letters, digits, '.', '_', '-')"
        )
    return name


def _ate_a_path(raw: str, option: str, config: pytest.Config) -> bool:
    """``--goblin-save workloads``: the bare option took, as its name, the test path that
    followed it (a path with a slash is caught by the name's pattern; this catches the rest)."""
    args = list(config.invocation_params.args)
    spaced = any(flag == option and value == raw for flag, value in zip(args, args[1:]))
    return spaced and (config.invocation_params.dir / raw).exists()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(raw: Raw) -> bool:
    if isinstance(raw.value, bool):
        return raw.value
    text = str(raw.value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise pytest.UsageError(
        f"{raw.source} must be one of 1, true, yes, on, 0, false, no, off; got {raw.value!r}"
    )


# ---------------------------------------------------------------- the settings

_RUN = "Running audits"
_VERDICT = "Verdicts"
_MEASURE = "Projecting and measuring"
_REPORT = "Reports"
_HISTORY = "Saved runs and comparisons"
_AGENT = "Audit backends"


@dataclass(frozen=True)
class GoblinSettings:
    """Every ``--goblin-*`` setting, resolved. Each field is declared with :func:`setting`."""

    enabled: bool = setting(
        False,
        "collect workload files and audit each one as a test item.",
        _RUN,
        kind="flag",
        key="",
        ini=False,
        env=False,
    )
    patterns: tuple[str, ...] = setting(
        DEFAULT_PATTERNS,
        "glob patterns of workload files.",
        _RUN,
        kind="list",
        option=False,
    )
    kb_dirs: tuple[Path, ...] = setting(
        (),
        "add a directory of rule YAML files to the knowledge base (repeatable; every "
        "source adds to the others).",
        _RUN,
        kind="paths",
        key="kb",
        metavar="DIR",
    )
    ignore: frozenset[str] = setting(
        frozenset(),
        "rule ids to waive in every workload.",
        _RUN,
        kind="list",
        option=False,
    )
    show_rules: bool = setting(
        False,
        "list the knowledge base (id, category, platforms, citation) and exit.",
        _RUN,
        kind="flag",
        key="rules",
        ini=False,
        env=False,
    )
    fix: bool = setting(
        False,
        "write the winning patch into the file of each failing workload.",
        _RUN,
        kind="flag",
        ini=False,
        env=False,
    )
    no_cache: bool = setting(
        False,
        "audit every workload afresh instead of reusing an earlier run's projected audit "
        "of unchanged inputs.",
        _RUN,
        kind="flag",
        ini=False,
    )
    attribution: bool = setting(
        False,
        "measure each patch without one change at a time and report what each change "
        "contributes (information only; 2 runs per change when measured).",
        _RUN,
        kind="flag",
    )
    threshold: float = setting(
        DEFAULT_THRESHOLD,
        "fail a workload when a patch is faster by more than this fraction.",
        _VERDICT,
        parse=_parse_threshold,
        metavar="FLOAT",
    )
    max_repeats: int = setting(
        DEFAULT_MAX_REPEATS,
        "paired rounds of baseline and patched runs to settle a measured verdict.",
        _VERDICT,
        parse=_count(1),
        metavar="N",
    )
    time_budget_s: float | None = setting(
        None,
        "stop sampling a workload's verdict after this long; --goblin-attribution "
        "measures with what is left.",
        _VERDICT,
        key="time-budget",
        parse=_positive,
        metavar="SECONDS",
        shown_default="none",
    )
    strict: bool = setting(
        False, "fail a workload whose measured verdict stays inconclusive.", _VERDICT, kind="flag"
    )
    loss_tolerance: float = setting(
        DEFAULT_LOSS_TOLERANCE,
        "how far the patched run's final loss may drift from the baseline's and still count.",
        _VERDICT,
        parse=_positive,
        metavar="FRACTION",
    )
    calibrate: bool = setting(
        False,
        "measure each device's noise floor once (a baseline against itself), show it in "
        "the summary, and error workloads whose threshold is below it.",
        _VERDICT,
        kind="flag",
    )
    fake: bool = setting(
        False,
        "project with the analytic model instead of measuring (no GPU needed).",
        _MEASURE,
        kind="flag",
    )
    fake_device: str = setting(
        DEFAULT_FAKE_DEVICE,
        "catalogue device the analytic model projects for under --goblin-fake, or a "
        "calibration saved by --goblin-save-calibration (its device fingerprint or measured "
        "device name): the machine it was fitted on.",
        _MEASURE,
        parse=_lower,
        metavar="NAME",
    )
    save_calibration: bool = setting(
        False,
        "fit the analytic model to this session's measured runs and save the device's "
        "correction under goblin_storage; later --goblin-fake runs for that catalogue "
        "device, or whose --goblin-fake-device names the calibration, project with it "
        "(still labelled projected).",
        _MEASURE,
        kind="flag",
    )
    device: str = setting(
        "auto",
        "device to measure on: auto (ROCm or CUDA GPU if torch sees one, else CPU), "
        "cpu, cuda, cuda:N, rocm or rocm:N.",
        _MEASURE,
        parse=_parse_device,
        metavar="DEVICE",
    )
    timeout_s: float = setting(
        DEFAULT_TIMEOUT_S,
        "kill a measured run's worker after this long and error the item.",
        _MEASURE,
        key="timeout",
        parse=_positive,
        metavar="SECONDS",
    )
    steps: int | None = setting(
        None,
        "timed optimizer steps of every measured run.",
        _MEASURE,
        parse=_count(1),
        metavar="N",
        shown_default="10 to profile, 50 to benchmark",
    )
    warmup: int = setting(
        DEFAULT_WARMUP,
        "untimed steps before the timed ones.",
        _MEASURE,
        parse=_count(0),
        metavar="N",
    )
    layers: int | None = setting(
        None,
        "measure N decoder layers (and 1) and extrapolate the full model's step time; a "
        "workload's goblin.layers wins.",
        _MEASURE,
        parse=_count(1),
        metavar="N",
        shown_default="all",
    )
    max_world_size: int | None = setting(
        None,
        "measure a workload of more ranks (world_size) on N ranks, with the same per-device "
        "batch and strategy, and label the result as shrunk.",
        _MEASURE,
        parse=_count(1),
        metavar="N",
        shown_default="the workload's",
    )
    engine: str = setting(
        "auto",
        "engine measured runs train with: hf (transformers + PEFT under the Hugging Face "
        "Trainer), native (pytest-goblin's own Llama-style decoder) or auto (hf when the hf "
        "extra is installed, else native).",
        _MEASURE,
        parse=_parse_engine,
        metavar="ENGINE",
    )
    json_path: Path | None = setting(
        None,
        "write the JSON report here (atomically).",
        _REPORT,
        key="json",
        parse=_path,
        metavar="PATH",
    )
    md_path: str | None = setting(
        None,
        "write a Markdown summary here (- for stdout); appended to when PATH is the file "
        "$GITHUB_STEP_SUMMARY names.",
        _REPORT,
        key="md",
        parse=_markdown_target,
        metavar="PATH",
    )
    html_path: Path | None = setting(
        None,
        "write a self-contained HTML report with a chart here.",
        _REPORT,
        key="html",
        parse=_path,
        metavar="PATH",
    )
    events_path: Path | None = setting(
        None,
        "write every audit's events here as JSON lines, with the item's node id.",
        _REPORT,
        key="events",
        parse=_path,
        metavar="PATH",
        ini=False,
    )
    storage: Path = setting(
        Path(DEFAULT_STORAGE),
        "directory of saved runs.",
        _HISTORY,
        parse=_path,
        option=False,
        shown_default=f"{DEFAULT_STORAGE} in the rootdir",
    )
    save: str | None = setting(
        None,
        "save this run's metrics under goblin_storage as NAME (bare: the git commit); "
        "write --goblin-save=NAME before paths.",
        _HISTORY,
        kind="optional",
        parse=_run_name,
        metavar="NAME",
        const="",
        ini=False,
    )
    compare: str | None = setting(
        None,
        "compare baseline tokens/s with the saved run NAME (bare: latest), on the same "
        "device only.",
        _HISTORY,
        kind="optional",
        parse=_run_name,
        metavar="NAME",
        const="latest",
        ini=False,
    )
    compare_fail: float | None = setting(
        None,
        "fail a workload whose baseline tokens/s dropped more than PCT percent below the "
        "compared run (compares with latest if --goblin-compare is not given).",
        _HISTORY,
        parse=_parse_percent,
        metavar="PCT",
        ini=False,
    )
    backend: str = setting(
        "auto",
        "who drives the audit: auto, planner, claude, qwen, or a name a "
        "pytest_goblin_make_backend plugin builds; auto = planner when no API key is set.",
        _AGENT,
        env_aliases=("GOBLIN_AGENT_BACKEND",),
        metavar="NAME",
    )
    model: str | None = setting(
        None,
        "model of the claude or qwen backend; after GOBLIN_MODEL, the backend's own "
        "variable (GOBLIN_CLAUDE_MODEL or GOBLIN_QWEN_MODEL) is read, then the ini key.",
        _AGENT,
        metavar="ID",
        shown_default="the backend's",
    )
    base_url: str | None = setting(
        None,
        "OpenAI-compatible server (vLLM, …) for the qwen backend (key from GOBLIN_QWEN_API_KEY).",
        _AGENT,
        env_aliases=("GOBLIN_QWEN_BASE_URL",),
        metavar="URL",
        ini=False,
    )
    backend_timeout_s: float = setting(
        DEFAULT_BACKEND_TIMEOUT_S,
        "seconds the claude or qwen backend waits for its server to connect and answer one "
        "request (then retries); after 2 workloads in a row whose backend failed, the "
        "session's other workloads fail at once with the same message.",
        _AGENT,
        key="backend-timeout",
        parse=_positive,
        metavar="SECONDS",
    )
    invocation_dir: Path = field(default_factory=Path.cwd)
    """Where pytest runs: what report paths from the command line are relative to."""
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Where each setting came from, for the errors found only after the settings are
    built (an unknown device, a missing SDK, a rule id)."""

    def source(self, name: str) -> str:
        """Setting ``name``'s source as an error names it; its option when not recorded."""
        if name in self.sources:
            return self.sources[name]
        spec = BY_NAME[name]
        return spec.option_name or spec.ini_name or name


SETTINGS: tuple[Setting, ...] = tuple(
    replace(f.metadata[_SPEC], name=f.name, default=f.default)
    for f in fields(GoblinSettings)
    if _SPEC in f.metadata
)
"""Every setting, in the order ``pytest --help`` and ``docs/options.md`` list them."""

BY_NAME = {spec.name: spec for spec in SETTINGS}

SETTINGS_KEY = pytest.StashKey[GoblinSettings]()

GROUP_TITLE = "performance audits of fine-tuning workloads (pytest-goblin)"


def _help(spec: Setting) -> str:
    shown = spec.default_text
    return spec.help if shown is None else f"{spec.help.rstrip('.')} (default {shown})."


def add_options(parser: pytest.Parser) -> None:
    """Register the ``goblin`` option group and its ini keys, from :data:`SETTINGS`."""
    group = parser.getgroup("goblin", GROUP_TITLE)
    for spec in SETTINGS:
        if spec.option_name is not None:
            group.addoption(spec.option_name, **_option_arguments(spec))
        if spec.ini_name is not None:
            ini_type = _INI_TYPES.get(spec.kind, "string")
            default: Any = {"flag": False, "list": [], "paths": []}.get(spec.kind, "")
            parser.addini(spec.ini_name, _help(spec), type=ini_type, default=default)


_INI_TYPES: dict[Kind, Literal["bool", "args", "paths", "string"]] = {
    "flag": "bool",
    "list": "args",
    "paths": "paths",
}
"""pytest's ini type of each kind of setting; ``string`` for the rest."""


def _option_arguments(spec: Setting) -> dict[str, Any]:
    arguments: dict[str, Any] = {"dest": spec.dest, "help": _help(spec), "default": None}
    if spec.kind == "flag":
        arguments["action"] = "store_true"
    elif spec.kind == "paths":
        arguments.update(action="append", metavar=spec.metavar)
    elif spec.kind == "optional":
        arguments.update(nargs="?", const=spec.const, metavar=spec.metavar)
    else:
        arguments["metavar"] = spec.metavar
    return arguments


def build(config: pytest.Config) -> GoblinSettings:
    """Resolve every setting once; bad values are a usage error naming their source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SETTINGS:
        if spec.kind == "paths":
            values[spec.name] = _all_paths(config, spec)
            continue
        raw = _pick(config, spec)
        if raw is None:
            sources[spec.name] = f"{spec.ini_name or spec.option_name} (default)"
            continue
        sources[spec.name] = raw.source
        values[spec.name] = _read(raw, spec, config)
    values["enabled"] = values.get("enabled", False) or values.get("show_rules", False)
    backend = values.get("backend", "auto")
    if backend not in BACKENDS and not config.hook.pytest_goblin_make_backend.get_hookimpls():
        raise pytest.UsageError(
            f"{sources['backend']}: backend {backend!r} is not one of {', '.join(BACKENDS)} "
            "(and no plugin implements pytest_goblin_make_backend)"
        )
    if not sources["model"].startswith(("--", "GOBLIN_MODEL ")):  # the ini's, or none
        backend_model = _backend_model(config, backend, values.get("base_url"))
        if backend_model is not None:
            values["model"], sources["model"] = backend_model.value, backend_model.source
    if values.get("compare") is None and values.get("compare_fail") is not None:
        values["compare"] = "latest"
    values.setdefault("storage", config.rootpath / DEFAULT_STORAGE)
    return GoblinSettings(**values, invocation_dir=config.invocation_params.dir, sources=sources)


def _pick(config: pytest.Config, spec: Setting) -> Raw | None:
    """Setting ``spec`` from its option, else its variables, else its ini key; None when
    none of them sets it."""
    if spec.option_name is not None:
        given = getattr(config.option, spec.dest)
        unset: tuple[Any, ...] = (None,) if spec.kind == "optional" else (None, "", False)
        if given not in unset:
            return Raw(given, spec.option_name)
    for variable in spec.env_names:
        if os.environ.get(variable, ""):
            return Raw(os.environ[variable], f"{variable} (environment)")
    if spec.ini_name is None:
        return None
    value = config.getini(spec.ini_name)
    if value in ("", [], False):
        return None
    return Raw(value, _ini_source(config, spec.ini_name), _ini_dir(config))


def _read(raw: Raw, spec: Setting, config: pytest.Config) -> Any:
    """The field's value from what the user wrote."""
    if spec.kind == "flag":
        return _parse_bool(raw)
    if spec.kind == "list":
        words = raw.value if isinstance(raw.value, list) else shlex.split(str(raw.value))
        return type(spec.default)(words)
    return raw.value if spec.parse is None else spec.parse(raw, config)


def _all_paths(config: pytest.Config, spec: Setting) -> tuple[Path, ...]:
    """A ``paths`` setting: the option's directories, the variable's, then the ini file's."""
    given = [Path(p) for p in getattr(config.option, spec.dest) or []]
    for variable in spec.env_names:
        given += [Path(p) for p in shlex.split(os.environ.get(variable, ""))]
    if spec.ini_name is not None:
        given += list(config.getini(spec.ini_name))
    return tuple(given)


def _backend_model(config: pytest.Config, backend: str, base_url: str | None) -> Raw | None:
    """The variable of the backend ``auto`` resolves to (GOBLIN_CLAUDE_MODEL or
    GOBLIN_QWEN_MODEL): read after ``--goblin-model`` and GOBLIN_MODEL, before the ini."""
    from pytest_goblin.agent.backends import MODEL_ENV, resolve_name

    variable = MODEL_ENV.get(resolve_name(backend, base_url), "")
    value = os.environ.get(variable, "") if variable else ""
    return Raw(value, f"{variable} (environment)") if value else None


def _ini_source(config: pytest.Config, key: str) -> str:
    """``-o goblin_x`` when the command line overrides the key, else ``goblin_x in
    pytest.ini`` (the file as seen from where pytest runs), else ``goblin_x (default)``.
    A key the file leaves unset gets the file's label for its default: a default is never
    the bad value an error is about."""
    if any(entry.split("=", 1)[0].strip() == key for entry in config.option.override_ini or ()):
        return f"-o {key}"
    if config.inipath is None:
        return f"{key} (default)"
    try:
        shown = os.path.relpath(config.inipath, config.invocation_params.dir)
    except ValueError:  # another drive on Windows
        shown = str(config.inipath)
    return f"{key} in {shown}"


def _ini_dir(config: pytest.Config) -> Path:
    """What a relative path in an ini value is relative to: the ini file's directory, as
    pytest resolves its own ``paths`` values (``-o`` values and ``goblin_kb`` included)."""
    return config.inipath.parent if config.inipath is not None else config.invocation_params.dir
