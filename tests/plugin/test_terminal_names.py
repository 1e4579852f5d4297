"""A workload's name cannot drive the terminal (issue 18, case 14).

Names with a newline, ``ESC[2J``, NUL or a bidi override (U+202E) were printed raw: they
could clear the screen or fake a line such as ``PASSED``. They are printed escaped, in
the node id, the failure header, the summary table and the counts line.
"""

from __future__ import annotations

import json

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
