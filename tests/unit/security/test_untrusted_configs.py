"""No secret out, nothing run from a config (issue 18, cases 10-13).

Redaction works on values, so it never breaks the JSON it sits in; the token shapes
people paste into configs are recognised; and a workload's ``env_vars`` reach the
measured worker only when they tune the run, so a config cannot make the worker load
code or crash its start with the environment on show.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from helpers.workloads import MISTUNED_YAML
from pytest_goblin.errors import DeviceFault
from pytest_goblin.redact import redact_known, redact_text
from pytest_goblin.runner import worker_env
from pytest_goblin.runner.measured import LiveDevice
from pytest_goblin.runner.options import MeasureOptions

# --- case 10: redaction never cuts into JSON quoting ---------------------------------

QUOTED = MISTUNED_YAML + 'env_vars: {WANDB_API_KEY: "abc123"}\nextras: {password: "x"}\n'


def test_redacting_json_text_keeps_it_json() -> None:
    """The workload's own text, quoted values and all, inside a tool result."""
    text = json.dumps({"text": QUOTED, "note": "db_password=\"hunter22\", token: 't0k3n'"})
    redacted = redact_text(text)
    data = json.loads(redacted)
    assert "abc123" not in redacted and "hunter22" not in redacted and "t0k3n" not in redacted
    assert 'WANDB_API_KEY: "<redacted>"' in data["text"]


def test_a_double_quoted_secret_is_audited_not_a_json_error(pytester: pytest.Pytester) -> None:
    """``WANDB_API_KEY: "abc123"`` made every audit end in ``JSONDecodeError``."""
    (pytester.path / "w.goblin.yaml").write_text(QUOTED)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-json",
        "out.json",
        "--goblin-events",
        "events.jsonl",
        "w.goblin.yaml",
    )
    result.assert_outcomes(failed=1)
    written = (pytester.path / "out.json").read_text() + (
        pytester.path / "events.jsonl"
    ).read_text()
    output = result.stdout.str() + written
    assert "JSONDecodeError" not in output
    assert "abc123" not in output


# --- case 11: the token shapes people paste ------------------------------------------

SHAPES = {
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123": "github_pat_11ABCDEFG",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx": "AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyA1234567890abcdefghijklmnopqrstu": "AIzaSyA1234567890abcdefghij",
    "postgres://trainer:pg-s3cret-pw@db.internal:5432/runs": "pg-s3cret-pw",
    "https://bot:gh-s3cret-pw@github.com/team/configs.git": "gh-s3cret-pw",
}


@pytest.mark.parametrize(("text", "secret"), sorted(SHAPES.items()))
def test_a_common_secret_shape_is_redacted_in_text_and_json(text: str, secret: str) -> None:
    assert secret not in redact_text(f"pushed with {text} yesterday")
    as_json = redact_text(json.dumps({"notes": [f"see {text}"]}))
    assert secret not in as_json
    json.loads(as_json)


def test_a_credentialed_url_keeps_its_user_and_host() -> None:
    assert (
        redact_text("postgres://trainer:pw123@db:5432/x")
        == "postgres://trainer:<redacted>@db:5432/x"
    )
    assert redact_text("https://github.com/a@b and mail a@b.c") == (
        "https://github.com/a@b and mail a@b.c"
    )


def test_the_shapes_are_redacted_in_structured_values_too() -> None:
    value: dict[str, Any] = {"extras": {"urls": list(SHAPES)}}
    dumped = json.dumps(redact_known(value, ()))
    assert not [secret for secret in SHAPES.values() if secret in dumped]


def test_the_shapes_never_reach_a_report_or_the_terminal(pytester: pytest.Pytester) -> None:
    extras = "".join(f"  note{i}: {json.dumps(text)}\n" for i, text in enumerate(SHAPES))
    (pytester.path / "w.goblin.yaml").write_text(MISTUNED_YAML + "extras:\n" + extras)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "-v",
        "--goblin-json",
        "out.json",
        "--goblin-md",
        "out.md",
        "--goblin-events",
        "events.jsonl",
        "w.goblin.yaml",
    )
    result.assert_outcomes(failed=1)
    outputs = [result.stdout.str()] + [
        (pytester.path / name).read_text() for name in ("out.json", "out.md", "events.jsonl")
    ]
    assert [s for s in SHAPES.values() for text in outputs if s in text] == []


# --- cases 12 and 13: what reaches the measured worker's environment -----------------


@pytest.mark.parametrize(
    "name",
    [
        "HIP_FORCE_DEV_KERNARG",
        "PYTORCH_TUNABLEOP_ENABLED",
        "PYTORCH_HIP_ALLOC_CONF",
        "NCCL_MIN_NCHANNELS",
        "NCCL_P2P_DIRECT_DISABLE",
        "CUDA_MODULE_LOADING",
        "OMP_NUM_THREADS",
        "TOKENIZERS_PARALLELISM",
        "TORCH_BLAS_PREFER_HIPBLASLT",
    ],
)
def test_a_tuning_variable_may_reach_the_worker(name: str) -> None:
    assert worker_env.refusal(name, "1") is None


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "HSA_TOOLS_LIB",
        "CUDA_INJECTION64_PATH",
        "NCCL_NET_PLUGIN",
        "OMP_TOOL_LIBRARIES",
        "TORCHINDUCTOR_CACHE_DIR",
        "HF_TOKEN",
        "PATH",
    ],
)
def test_a_variable_that_loads_code_or_does_not_tune_is_refused_by_name(name: str) -> None:
    reason = worker_env.refusal(name, "/tmp/x")
    assert reason is not None and reason.startswith(f"{name} is not a variable that tunes")
    assert "/tmp/x" not in reason


def test_only_the_systems_allocators_may_be_preloaded() -> None:
    assert worker_env.refusal("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2") is None
    assert worker_env.refusal("LD_PRELOAD", "/usr/lib/libtcmalloc.so.4") is None
    for value in ("/tmp/libjemalloc.so", "/usr/lib/../../tmp/libjemalloc.so", "libjemalloc.so"):
        assert worker_env.refusal("LD_PRELOAD", value) is not None


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("A=B", "1", "'A=B' is not an environment variable name"),
        ("HIP_X", "a\0b", "the value of HIP_X holds a NUL character"),
        ("", "1", "'' is not an environment variable name"),
    ],
)
def test_what_no_environment_can_carry_is_refused(name: str, value: str, reason: str) -> None:
    refused = worker_env.refusal(name, value)
    assert refused is not None and refused.startswith(reason)


def test_the_device_refuses_a_patched_environment_before_starting_a_worker() -> None:
    """A patch (an LLM's, say) is checked where the worker starts, not only the file."""
    device = LiveDevice(MeasureOptions(device="cpu"))
    with pytest.raises(DeviceFault, match=r"^env_vars\.PYTHONPATH: PYTHONPATH is not"):
        device._worker({"PYTHONPATH": "/tmp"})
    assert device._workers == {}


TINY = """\
model: {layers: 2, hidden: 64, intermediate: 172, heads: 4, kv_heads: 2, vocab: 256}
seq_len: 32
"""


def _measured(pytester: pytest.Pytester, text: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    (pytester.path / "w.goblin.yaml").write_text(text)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-device",
        "cpu",
        "--goblin-json",
        "out.json",
        "--junitxml",
        "junit.xml",
        "--goblin-html",
        "out.html",
        "w.goblin.yaml",
    )
    (workload,) = json.loads((pytester.path / "out.json").read_text())["workloads"]
    return result, workload


def test_a_pythonpath_in_env_vars_runs_nothing_and_is_refused(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED_BY_SITECUSTOMIZE"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    result, workload = _measured(pytester, TINY + f"env_vars: {{PYTHONPATH: {site}}}\n")
    result.assert_outcomes(failed=1)  # pytest's count; the goblin outcome is an error
    assert not marker.exists()
    assert workload["outcome"] == "error"
    assert workload["error"].startswith(
        "w.goblin.yaml: field 'env_vars.PYTHONPATH': PYTHONPATH is not a variable that tunes"
    )


@pytest.mark.parametrize(
    ("env", "field"),
    [('{"A=B": "1"}', "env_vars.A=B"), ('{HIP_X: "a\\0b"}', "env_vars.HIP_X")],
)
def test_an_environment_no_process_can_take_is_an_item_error_without_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: str, field: str
) -> None:
    canary = "hf_WorkerEnvCanary5c1d7e9a3b2f4068"
    monkeypatch.setenv("HF_TOKEN", canary)
    result, workload = _measured(pytester, TINY + f"env_vars: {env}\n")
    result.assert_outcomes(failed=1)
    assert workload["outcome"] == "error"
    assert workload["error"].startswith(f"w.goblin.yaml: field '{field}'")
    output = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    page = (pytester.path / "out.html").read_text()
    assert html.escape(workload["error"]) in page  # the item's error, as in the JSON
    assert canary not in output + page
    assert "Traceback" not in output and "subprocess" not in output
