"""A workload's name or file path cannot drive the terminal (issue 18, case 14).

Names with a newline, ``ESC[2J``, NUL or a bidi override (U+202E) were printed raw: they
could clear the screen or fake a line such as ``PASSED``. They are printed escaped, in
the node id, the failure header, the summary table and the counts line. A file whose
path holds them is shown escaped the same way in every output, and its patch's header
quotes the path as git does, so the patch still applies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.workloads import MISTUNED_YAML

EVIL = "evil\x1b[2J\nFAKE: 0 failed\u202e"


def test_control_characters_in_a_name_are_printed_escaped(pytester: pytest.Pytester) -> None:
    text = MISTUNED_YAML.replace("name: llama-mistuned", "name: " + json.dumps(EVIL))
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "w.goblin.yaml").write_text(text)
    result = pytester.runpytest("-p", "no:cacheprovider", "--goblin", "--goblin-fake", "-v", "w")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    for raw in ("\x1b", "\u202e", "\x00"):
        assert raw not in output
    assert not [line for line in output.splitlines() if line.startswith("FAKE")]
    assert "evil\\x1b[2J\\nFAKE: 0 failed\\u202e" in output


EVIL_FILE = "evil\x1b[2J\nFAKE: 0 failed\u202e.goblin.yaml"
"""A file name a Linux file system takes (NUL is the one character it refuses)."""
SHOWN = "w/evil\\x1b[2J\\nFAKE: 0 failed\\u202e.goblin.yaml"
RAW = ("\x1b", "\u202e", "\x00")


def evil_file(pytester: pytest.Pytester) -> Path:
    """The mistuned workload, named by its file only, under ``w/`` with a hostile name."""
    (pytester.path / "w").mkdir()
    path = pytester.path / "w" / EVIL_FILE
    path.write_text(MISTUNED_YAML.replace("name: llama-mistuned\n", ""))
    return path


def test_control_characters_in_a_file_path_are_shown_escaped_in_every_output(
    pytester: pytest.Pytester,
) -> None:
    evil_file(pytester)
    outputs = {
        "json": "r.json",
        "md": "r.md",
        "html": "r.html",
        "events": "e.jsonl",
    }
    options = [f"--goblin-{kind}={name}" for kind, name in outputs.items()]
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-fake", "-vv", "--junitxml=j.xml",
        *options, "w",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    terminal = result.stdout.str() + result.stderr.str()
    files = {name: (pytester.path / name).read_text() for name in [*outputs.values(), "j.xml"]}
    for where, text in {"terminal": terminal, **files}.items():
        assert not [raw for raw in RAW if raw in text], where
    assert not [line for line in terminal.splitlines() if line.startswith("FAKE")]
    assert f"FAILED {SHOWN}::evil\\x1b[2J\\nFAKE: 0 failed\\u202e - " in terminal
    assert f"patch for {SHOWN} (git apply):" in terminal
    workload = json.loads(files["r.json"])["workloads"][0]
    assert workload["path"] == SHOWN and workload["nodeid"].startswith(SHOWN + "::")
    assert SHOWN in files["r.md"] and SHOWN in files["r.html"]
    assert 'classname="w.evil\\x1b[2J\\nFAKE: 0 failed\\u202e.goblin.yaml"' in files["j.xml"]
    events = [json.loads(line) for line in files["e.jsonl"].splitlines()]
    assert {event["nodeid"] for event in events} == {workload["nodeid"]}


def test_the_patch_of_such_a_file_quotes_its_path_as_git_does_and_applies(
    pytester: pytest.Pytester,
) -> None:
    path = evil_file(pytester)
    pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-fake", "--goblin-json=r.json", "w"
    )
    report = json.loads((pytester.path / "r.json").read_text())
    diff = report["workloads"][0]["patch"]["diff"]
    quoted = '"a/w/evil\\033[2J\\nFAKE: 0 failed\\342\\200\\256.goblin.yaml"'
    assert diff.startswith(f"--- {quoted}\n+++ {quoted.replace('a/', 'b/', 1)}\n")
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: the header's form is checked above")
    subprocess.run([git, "init", "-q", "."], cwd=pytester.path, check=True)
    (pytester.path / "p.diff").write_text(diff)
    subprocess.run([git, "apply", "p.diff"], cwd=pytester.path, check=True)
    assert "precision: bf16" in path.read_text()


def test_the_summary_says_which_devices_workloads_ran_on_when_not_the_headers(
    pytester: pytest.Pytester,
) -> None:
    """The header names the session's simulated device; a workload's goblin.device ran
    elsewhere, and the summary used to leave that out."""
    (pytester.path / "w").mkdir()
    tuned = MISTUNED_YAML.replace("name: llama-mistuned", "name: on-h100")
    (pytester.path / "w" / "a.goblin.yaml").write_text(tuned + "goblin:\n  device: h100\n")
    (pytester.path / "w" / "b.goblin.yaml").write_text(MISTUNED_YAML)
    result = pytester.runpytest("-p", "no:cacheprovider", "--goblin", "--goblin-fake", "w")
    result.stdout.fnmatch_lines(
        [
            "device: AMD Instinct MI300X (simulated) | *",
            "devices: the workloads ran on NVIDIA H100 SXM (1 workload), AMD Instinct MI300X "
            "(1 workload)",
        ]
    )


def test_no_devices_line_when_every_workload_ran_on_the_headers_device(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "w.goblin.yaml").write_text(MISTUNED_YAML)
    result = pytester.runpytest("-p", "no:cacheprovider", "--goblin", "--goblin-fake")
    assert "devices: the workloads ran on" not in result.stdout.str()
