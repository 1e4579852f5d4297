"""One settings object, built once from command line, environment and ini.

Precedence is command line, then environment, then ini, then the default —
pytest-timeout's way. The object lives in ``config.stash[SETTINGS_KEY]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("auto", "planner", "claude", "qwen")
DEFAULT_PATTERNS = ("*.goblin.yaml", "*.goblin.yml", "*.goblin.json")
DEFAULT_THRESHOLD = 0.10
DEFAULT_FAKE_DEVICE = "mi300x"


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


SETTINGS_KEY = pytest.StashKey[GoblinSettings]()


def add_options(parser: pytest.Parser) -> None:
    """Register the ``goblin`` option group and its ini keys."""
    group = parser.getgroup("goblin", "performance audits of fine-tuning workloads (pytest-goblin)")
    group.addoption("--goblin", action="store_true", default=None,
                    help="collect workload files and audit each one as a test item.")
    group.addoption("--goblin-fake", action="store_true", default=None,
                    help="project with the analytic model instead of measuring (no GPU needed).")
    group.addoption("--goblin-fake-device", metavar="NAME", default=None,
                    help=f"simulated device for --goblin-fake (default {DEFAULT_FAKE_DEVICE}).")
    group.addoption("--goblin-threshold", metavar="FLOAT", default=None,
                    help="fail a workload when a patch is faster by more than this fraction "
                         f"(default {DEFAULT_THRESHOLD}).")
    group.addoption("--goblin-backend", choices=BACKENDS, default=None,
                    help="who drives the audit; auto = planner when no API key is set.")
    group.addoption("--goblin-json", metavar="PATH", default=None,
                    help="write the JSON report here (atomically).")
    group.addoption("--goblin-kb", metavar="DIR", action="append", default=None,
                    help="add a directory of rule YAML files to the knowledge base (repeatable).")
    group.addoption("--goblin-rules", action="store_true", default=False,
                    help="list the knowledge base (id, category, platforms, citation) and exit.")

    parser.addini("goblin_fake", "use the analytic model (like --goblin-fake)", type="bool",
                  default=False)
    parser.addini("goblin_fake_device", "simulated device for fake mode",
                  default=DEFAULT_FAKE_DEVICE)
    parser.addini("goblin_threshold", "speedup fraction that fails a workload",
                  default=str(DEFAULT_THRESHOLD))
    parser.addini("goblin_backend", "audit backend: auto, planner, claude or qwen", default="auto")
    parser.addini("goblin_json", "path of the JSON report", default="")
    parser.addini("goblin_patterns", "glob patterns of workload files", type="args",
                  default=list(DEFAULT_PATTERNS))
    parser.addini("goblin_ignore", "rule ids to waive in every workload", type="args", default=[])
    parser.addini("goblin_kb", "extra rule directories", type="paths", default=[])


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def build(config: pytest.Config) -> GoblinSettings:
    """Resolve every setting once; bad values are a usage error naming their source."""
    opt = config.option
    env = os.environ
    threshold_raw = _first(opt.goblin_threshold, env.get("GOBLIN_THRESHOLD"),
                           config.getini("goblin_threshold"))
    threshold = _parse_threshold(str(threshold_raw))
    backend = str(_first(opt.goblin_backend, env.get("GOBLIN_AGENT_BACKEND"),
                         config.getini("goblin_backend")))
    if backend not in BACKENDS:
        raise pytest.UsageError(
            f"goblin backend {backend!r} is not one of {', '.join(BACKENDS)}"
        )
    fake_env = env.get("GOBLIN_FAKE")
    fake = bool(_first(opt.goblin_fake, _env_bool(fake_env), config.getini("goblin_fake")))
    json_path = _first(opt.goblin_json, config.getini("goblin_json"))
    kb_dirs = [Path(p) for p in (opt.goblin_kb or [])] + list(config.getini("goblin_kb"))
    return GoblinSettings(
        enabled=bool(opt.goblin) or bool(opt.goblin_rules),
        fake=fake,
        fake_device=str(_first(opt.goblin_fake_device, env.get("GOBLIN_FAKE_DEVICE"),
                               config.getini("goblin_fake_device"))).lower(),
        threshold=threshold,
        backend=backend,
        json_path=Path(json_path) if json_path else None,
        patterns=tuple(config.getini("goblin_patterns")),
        ignore=frozenset(config.getini("goblin_ignore")),
        kb_dirs=tuple(kb_dirs),
        show_rules=bool(opt.goblin_rules),
        invocation_dir=config.invocation_params.dir,
    )


def _parse_threshold(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"goblin threshold must be a number, got {raw!r}") from None
    if not value > 0:
        raise pytest.UsageError(
            f"goblin threshold must be a fraction above 0 (0.10 = 10%), got {raw!r}"
        )
    return value


def _env_bool(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    return raw.strip().lower() in {"1", "true", "yes", "on"}
