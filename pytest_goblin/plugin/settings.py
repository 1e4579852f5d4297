"""One settings object, built once from command line, environment and ini.

Precedence is command line, then environment, then ini, then the default —
pytest-timeout's way. A bad value is a usage error that names where it came
from. A relative path is relative to where pytest runs when it comes from the
command line, and to the ini file's directory when it comes from the ini file
(pytest's rule for its own ``paths`` values). The object lives in
``config.stash[SETTINGS_KEY]``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.runner.options import DEFAULT_TIMEOUT_S, DEFAULT_WARMUP, parse_selector

BACKENDS = ("auto", "planner", "claude", "qwen")
DEFAULT_PATTERNS = ("*.goblin.yaml", "*.goblin.yml", "*.goblin.json")
DEFAULT_THRESHOLD = 0.10
DEFAULT_FAKE_DEVICE = "mi300x"
DEFAULT_MAX_REPEATS = 10
DEFAULT_LOSS_TOLERANCE = 0.05
DEFAULT_STORAGE = ".goblin"
DEVICE_HELP = (
    "device to measure on: auto (ROCm or CUDA GPU if torch sees one, else CPU), "
    "cpu, cuda, cuda:N, rocm or rocm:N."
)


@dataclass(frozen=True)
class GoblinSettings:
    enabled: bool = False
    fake: bool = False
    fake_device: str = DEFAULT_FAKE_DEVICE
    threshold: float = DEFAULT_THRESHOLD
    backend: str = "auto"
    json_path: Path | None = None
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    ignore: frozenset[str] = frozenset()
    kb_dirs: tuple[Path, ...] = ()
    show_rules: bool = False
    invocation_dir: Path = field(default_factory=Path.cwd)
    fix: bool = False
    model: str | None = None
    base_url: str | None = None
    events_path: Path | None = None
    md_path: str | None = None
    html_path: Path | None = None
    storage: Path = Path(DEFAULT_STORAGE)
    save: str | None = None
    compare: str | None = None
    compare_fail: float | None = None
    device: str = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S
    steps: int | None = None
    warmup: int = DEFAULT_WARMUP
    layers: int | None = None
    no_cache: bool = False
    max_repeats: int = DEFAULT_MAX_REPEATS
    time_budget_s: float | None = None
    strict: bool = False
    loss_tolerance: float = DEFAULT_LOSS_TOLERANCE
    calibrate: bool = False
    attribution: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Where ``fake_device``, ``backend`` and ``ignore`` came from, for the errors found
    only after the settings are built (an unknown device, a missing SDK, a rule id)."""

    def source(self, name: str) -> str:
        """Setting ``name``'s source as an error names it; its option when not recorded."""
        return self.sources.get(name, f"--goblin-{name.replace('_', '-')}")


@dataclass(frozen=True)
class Raw:
    """A setting as the user wrote it, and where, so that an error names the place to fix."""

    value: Any
    source: str
    """``--goblin-device``, ``GOBLIN_DEVICE (environment)``, ``goblin_device in pytest.ini``
    or ``-o goblin_device``."""
    base: Path | None = None
    """The directory a relative path in an ini value is relative to; None: where pytest runs."""


SETTINGS_KEY = pytest.StashKey[GoblinSettings]()


def add_options(parser: pytest.Parser) -> None:
    """Register the ``goblin`` option group and its ini keys."""
    group = parser.getgroup("goblin", "performance audits of fine-tuning workloads (pytest-goblin)")
    group.addoption(
        "--goblin",
        action="store_true",
        default=None,
        help="collect workload files and audit each one as a test item.",
    )
    group.addoption(
        "--goblin-fake",
        action="store_true",
        default=None,
        help="project with the analytic model instead of measuring (no GPU needed).",
    )
    group.addoption(
        "--goblin-fake-device",
        metavar="NAME",
        default=None,
        help=f"simulated device for --goblin-fake (default {DEFAULT_FAKE_DEVICE}).",
    )
    group.addoption(
        "--goblin-threshold",
        metavar="FLOAT",
        default=None,
        help="fail a workload when a patch is faster by more than this fraction "
        f"(default {DEFAULT_THRESHOLD}).",
    )
    group.addoption(
        "--goblin-backend",
        metavar="NAME",
        default=None,
        help="who drives the audit: auto, planner, claude, qwen, or a name a "
        "pytest_goblin_make_backend plugin builds; auto = planner when no API "
        "key is set.",
    )
    group.addoption(
        "--goblin-json",
        metavar="PATH",
        default=None,
        help="write the JSON report here (atomically).",
    )
    group.addoption(
        "--goblin-kb",
        metavar="DIR",
        action="append",
        default=None,
        help="add a directory of rule YAML files to the knowledge base (repeatable).",
    )
    group.addoption(
        "--goblin-rules",
        action="store_true",
        default=False,
        help="list the knowledge base (id, category, platforms, citation) and exit.",
    )
    group.addoption(
        "--goblin-fix",
        action="store_true",
        default=False,
        help="write the winning patch into the file of each failing workload.",
    )
    group.addoption(
        "--goblin-model",
        metavar="ID",
        default=None,
        help="model of the claude or qwen backend (env GOBLIN_CLAUDE_MODEL / GOBLIN_QWEN_MODEL).",
    )
    group.addoption(
        "--goblin-base-url",
        metavar="URL",
        default=None,
        help="OpenAI-compatible server (vLLM, …) for the qwen backend "
        "(env GOBLIN_QWEN_BASE_URL; key from GOBLIN_QWEN_API_KEY).",
    )
    group.addoption(
        "--goblin-events",
        metavar="PATH",
        default=None,
        help="write every audit's events here as JSON lines, with the item's node id.",
    )
    group.addoption(
        "--goblin-md",
        metavar="PATH",
        default=None,
        help="write a Markdown summary here (- for stdout); appended to when PATH "
        "is the file $GITHUB_STEP_SUMMARY names.",
    )
    group.addoption(
        "--goblin-html",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report with a chart here.",
    )
    group.addoption(
        "--goblin-save",
        metavar="NAME",
        nargs="?",
        const="",
        default=None,
        help="save this run's metrics under goblin_storage as NAME (default: the git "
        "commit); write --goblin-save=NAME before paths.",
    )
    group.addoption(
        "--goblin-compare",
        metavar="NAME",
        nargs="?",
        const="latest",
        default=None,
        help="compare baseline tokens/s with the saved run NAME (default: latest), "
        "on the same device only.",
    )
    group.addoption(
        "--goblin-compare-fail",
        metavar="PCT",
        default=None,
        help="fail a workload whose baseline tokens/s dropped more than PCT percent "
        "below the compared run (compares with latest if --goblin-compare is "
        "not given).",
    )
    group.addoption("--goblin-device", metavar="DEVICE", default=None, help=DEVICE_HELP)
    group.addoption(
        "--goblin-timeout",
        metavar="SECONDS",
        default=None,
        help="kill a measured run's worker after this long and error the item "
        f"(default {DEFAULT_TIMEOUT_S:g}).",
    )
    group.addoption(
        "--goblin-steps",
        metavar="N",
        default=None,
        help="timed optimizer steps of every measured run (default: 10 to profile, "
        "50 to benchmark).",
    )
    group.addoption(
        "--goblin-warmup",
        metavar="N",
        default=None,
        help=f"untimed steps before the timed ones (default {DEFAULT_WARMUP}).",
    )
    group.addoption(
        "--goblin-layers",
        metavar="N",
        default=None,
        help="measure N decoder layers (and 1) and extrapolate the full model's step "
        "time; a workload's goblin.layers wins.",
    )
    group.addoption(
        "--goblin-max-repeats",
        metavar="N",
        default=None,
        help="paired rounds of baseline and patched runs to settle a measured "
        f"verdict (default {DEFAULT_MAX_REPEATS}).",
    )
    group.addoption(
        "--goblin-time-budget",
        metavar="SECONDS",
        default=None,
        help="stop sampling a workload's verdict after this long; "
        "--goblin-attribution measures with what is left (default: none).",
    )
    group.addoption(
        "--goblin-strict",
        action="store_true",
        default=None,
        help="fail a workload whose measured verdict stays inconclusive.",
    )
    group.addoption(
        "--goblin-loss-tolerance",
        metavar="FRACTION",
        default=None,
        help="how far the patched run's final loss may drift from the baseline's "
        f"and still count (default {DEFAULT_LOSS_TOLERANCE}).",
    )
    group.addoption(
        "--goblin-calibrate",
        action="store_true",
        default=None,
        help="measure each device's noise floor once (a baseline against itself), "
        "show it in the summary, and error workloads whose threshold is below "
        "it.",
    )
    group.addoption(
        "--goblin-no-cache",
        action="store_true",
        default=False,
        help="audit every workload afresh instead of reusing an earlier run's "
        "projected audit of unchanged inputs.",
    )
    group.addoption(
        "--goblin-attribution",
        action="store_true",
        default=None,
        help="measure each patch without one change at a time and report what "
        "each change contributes (information only; 2 runs per change when "
        "measured).",
    )

    parser.addini(
        "goblin_fake", "use the analytic model (like --goblin-fake)", type="bool", default=False
    )
    parser.addini(
        "goblin_fake_device", "simulated device for fake mode", default=DEFAULT_FAKE_DEVICE
    )
    parser.addini(
        "goblin_threshold", "speedup fraction that fails a workload", default=str(DEFAULT_THRESHOLD)
    )
    parser.addini("goblin_backend", "audit backend: auto, planner, claude or qwen", default="auto")
    parser.addini("goblin_json", "path of the JSON report (relative to the ini file)", default="")
    parser.addini(
        "goblin_patterns",
        "glob patterns of workload files",
        type="args",
        default=list(DEFAULT_PATTERNS),
    )
    parser.addini("goblin_ignore", "rule ids to waive in every workload", type="args", default=[])
    parser.addini("goblin_kb", "extra rule directories", type="paths", default=[])
    parser.addini("goblin_model", "model of the claude or qwen backend", default="")
    parser.addini(
        "goblin_md",
        "path of the Markdown summary (relative to the ini file; - for stdout)",
        default="",
    )
    parser.addini("goblin_html", "path of the HTML report (relative to the ini file)", default="")
    parser.addini(
        "goblin_storage",
        "directory of saved runs (relative to the ini file; default "
        f"{DEFAULT_STORAGE} in the rootdir)",
        default="",
    )
    parser.addini("goblin_device", DEVICE_HELP, default="auto")
    parser.addini("goblin_timeout", "seconds a measured run may take", default="")
    parser.addini("goblin_steps", "timed steps of every measured run", default="")
    parser.addini("goblin_warmup", "untimed steps before the timed ones", default="")
    parser.addini("goblin_layers", "decoder layers to measure before extrapolating", default="")
    parser.addini("goblin_max_repeats", "paired rounds to settle a measured verdict", default="")
    parser.addini(
        "goblin_time_budget",
        "seconds of measuring per workload (verdict first, then attribution)",
        default="",
    )
    parser.addini(
        "goblin_strict", "fail inconclusive measured verdicts", type="bool", default=False
    )
    parser.addini("goblin_loss_tolerance", "allowed final-loss drift of a patch", default="")
    parser.addini(
        "goblin_calibrate",
        "measure each device's A/A noise floor (like --goblin-calibrate)",
        type="bool",
        default=False,
    )
    parser.addini(
        "goblin_attribution",
        "report each change's share of a patch's speedup",
        type="bool",
        default=False,
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def build(config: pytest.Config) -> GoblinSettings:
    """Resolve every setting once; bad values are a usage error naming their source."""
    opt = config.option
    threshold_raw = _pick(config, "threshold", "GOBLIN_THRESHOLD")
    threshold = DEFAULT_THRESHOLD if threshold_raw is None else _parse_threshold(threshold_raw)
    backend_raw = _pick(config, "backend", "GOBLIN_AGENT_BACKEND") or Raw(
        "auto", "goblin_backend (default)"
    )
    backend = str(backend_raw.value)
    if backend not in BACKENDS and not config.hook.pytest_goblin_make_backend.get_hookimpls():
        raise pytest.UsageError(
            f"{backend_raw.source}: backend {backend!r} is not one of {', '.join(BACKENDS)} "
            "(and no plugin implements pytest_goblin_make_backend)"
        )
    fake_env = os.environ.get("GOBLIN_FAKE")
    fake = bool(_first(opt.goblin_fake, _env_bool(fake_env), config.getini("goblin_fake")))
    fake_device = _pick(config, "fake_device", "GOBLIN_FAKE_DEVICE") or Raw(
        DEFAULT_FAKE_DEVICE, "goblin_fake_device (default)"
    )
    kb_dirs = [Path(p) for p in (opt.goblin_kb or [])] + list(config.getini("goblin_kb"))
    model, base_url = _llm_settings(config, backend)
    json_raw = _pick(config, "json")
    md_raw = _pick(config, "md")
    html_raw = _pick(config, "html")
    storage_raw = _pick(config, "storage", option=False)
    compare_fail = _parse_percent(_pick(config, "compare_fail", ini=False))
    compare = opt.goblin_compare or ("latest" if compare_fail is not None else None)
    return GoblinSettings(
        enabled=bool(opt.goblin) or bool(opt.goblin_rules),
        fake=fake,
        fake_device=str(fake_device.value).lower(),
        threshold=threshold,
        backend=backend,
        json_path=None if json_raw is None else _path(json_raw),
        patterns=tuple(config.getini("goblin_patterns")),
        ignore=frozenset(config.getini("goblin_ignore")),
        kb_dirs=tuple(kb_dirs),
        show_rules=bool(opt.goblin_rules),
        invocation_dir=config.invocation_params.dir,
        fix=bool(opt.goblin_fix),
        model=model,
        base_url=base_url,
        events_path=Path(opt.goblin_events) if opt.goblin_events else None,
        md_path=None if md_raw is None else _markdown_target(md_raw),
        html_path=None if html_raw is None else _path(html_raw),
        storage=config.rootpath / DEFAULT_STORAGE if storage_raw is None else _path(storage_raw),
        save=_run_name(opt.goblin_save, "--goblin-save", config),
        compare=_run_name(compare, "--goblin-compare", config),
        compare_fail=compare_fail,
        no_cache=bool(opt.goblin_no_cache),
        attribution=bool(opt.goblin_attribution) or bool(config.getini("goblin_attribution")),
        sources={
            "backend": backend_raw.source,
            "fake_device": fake_device.source,
            "ignore": _ini_source(config, "goblin_ignore"),
        },
        **_measure_settings(config),
        **_sampling_settings(config),
    )


def _pick(
    config: pytest.Config,
    name: str,
    env: str | None = None,
    *,
    option: bool = True,
    ini: bool = True,
) -> Raw | None:
    """Setting ``name`` from ``--goblin-<name>``, else the variable ``env``, else the ini
    key ``goblin_<name>`` (its default included); None when none of them sets it.
    ``option``/``ini`` False: the setting has no such option or key."""
    key = f"goblin_{name}"
    given = getattr(config.option, key) if option else None
    if given not in (None, ""):
        return Raw(given, f"--goblin-{name.replace('_', '-')}")
    if env is not None and os.environ.get(env, ""):
        return Raw(os.environ[env], f"{env} (environment)")
    value = config.getini(key) if ini else None
    if value in (None, ""):
        return None
    return Raw(value, _ini_source(config, key), _ini_dir(config))


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


def _path(raw: Raw) -> Path:
    """A path setting: from the command line relative to where pytest runs (the reports
    join it to ``invocation_dir``), from the ini file relative to the ini file."""
    return Path(raw.value) if raw.base is None else raw.base / str(raw.value)


def _markdown_target(raw: Raw) -> str:
    """``-`` (stdout) stays as it is; anything else is a path like ``_path``'s."""
    value = str(raw.value)
    return value if value == "-" else str(_path(raw))


def _sampling_settings(config: pytest.Config) -> dict[str, Any]:
    """--goblin-max-repeats, -time-budget, -strict, -loss-tolerance and -calibrate (command
    line, then ini)."""
    opt = config.option
    repeats = _pick(config, "max_repeats")
    budget = _pick(config, "time_budget")
    tolerance = _pick(config, "loss_tolerance")
    return {
        "max_repeats": DEFAULT_MAX_REPEATS if repeats is None else _parse_number(repeats, int, 1),
        "time_budget_s": None
        if budget is None
        else _parse_number(budget, float, minimum=0, inclusive=False),
        "strict": bool(opt.goblin_strict) or bool(config.getini("goblin_strict")),
        "loss_tolerance": DEFAULT_LOSS_TOLERANCE
        if tolerance is None
        else _parse_number(tolerance, float, minimum=0, inclusive=False),
        "calibrate": bool(opt.goblin_calibrate) or bool(config.getini("goblin_calibrate")),
    }


def _measure_settings(config: pytest.Config) -> dict[str, Any]:
    """--goblin-device (or GOBLIN_DEVICE), -timeout, -steps, -warmup and -layers (command
    line, then ini)."""
    device_raw = _pick(config, "device", "GOBLIN_DEVICE") or Raw("auto", "goblin_device (default)")
    device = str(device_raw.value)
    try:
        parse_selector(device)
    except ValueError as exc:
        raise pytest.UsageError(f"{device_raw.source}: {exc}") from None
    timeout = _pick(config, "timeout")
    steps = _pick(config, "steps")
    warmup = _pick(config, "warmup")
    layers = _pick(config, "layers")
    return {
        "device": device.strip().lower(),
        "timeout_s": DEFAULT_TIMEOUT_S
        if timeout is None
        else _parse_number(timeout, float, minimum=0, inclusive=False),
        "steps": None if steps is None else _parse_number(steps, int, 1),
        "warmup": DEFAULT_WARMUP if warmup is None else _parse_number(warmup, int, 0),
        "layers": None if layers is None else _parse_number(layers, int, 1),
    }


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


def _llm_settings(config: pytest.Config, backend: str) -> tuple[str | None, str | None]:
    """The LLM backend's model and qwen's base URL.

    The model's variable depends on the backend ``auto`` resolves to
    (GOBLIN_CLAUDE_MODEL or GOBLIN_QWEN_MODEL), so it is resolved here.
    """
    from pytest_goblin.agent.backends import MODEL_ENV, qwen_base_url, resolve_name

    base_url = qwen_base_url(config.option.goblin_base_url)
    env_model = os.environ.get(MODEL_ENV.get(resolve_name(backend, base_url), ""))
    model = _first(config.option.goblin_model, env_model, config.getini("goblin_model"))
    return model, base_url


def _parse_threshold(raw: Raw) -> float:
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


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _run_name(raw: str | None, option: str, config: pytest.Config) -> str | None:
    """A saved run's name is a plain file-name part; a path here means the option ate one."""
    if raw is None or raw == "":
        return raw
    if _ate_a_path(raw, option, config):
        raise pytest.UsageError(
            f"{option}: {raw!r} is a path here, and a bare {option} takes the next argument "
            f"as its run name; write {option}=NAME"
        )
    if not RUN_NAME.fullmatch(raw):
        raise pytest.UsageError(
            f"{option}: {raw!r} is not a run name (letters, digits, '.', '_', '-'); a bare "
            f"{option} takes the next argument as its name, so write {option}=NAME"
        )
    return raw


def _ate_a_path(raw: str, option: str, config: pytest.Config) -> bool:
    """``--goblin-save workloads``: the bare option took, as its name, the test path that
    followed it (a path with a slash is caught by the name's pattern; this catches the rest)."""
    args = list(config.invocation_params.args)
    spaced = any(flag == option and value == raw for flag, value in zip(args, args[1:]))
    return spaced and (config.invocation_params.dir / raw).exists()


def _parse_percent(raw: Raw | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(str(raw.value).strip().removesuffix("%"))
    except ValueError:
        raise pytest.UsageError(
            f"{raw.source} must be a percentage such as 5 or 5%, got {raw.value!r}"
        ) from None
    if not 0 < value < 100:
        raise pytest.UsageError(f"{raw.source} must be between 0 and 100, got {raw.value!r}")
    return value


def _env_bool(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    return raw.strip().lower() in {"1", "true", "yes", "on"}
