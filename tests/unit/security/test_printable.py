"""Text from a workload file or a model never drives the terminal (issue 18, case 14).

``printable`` escapes what a terminal would act on; ``git_quoted`` quotes a diff
header's path as git's ``quote_c_style`` does, so the patch still applies.
"""

from __future__ import annotations

import pytest

from pytest_goblin.errors import WorkloadError
from pytest_goblin.events import live_line
from pytest_goblin.printable import git_quoted, printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("llama-3-8b.yaml", "llama-3-8b.yaml"),
        ("café 模型.yaml", "café 模型.yaml"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("a\nFAKE", "a\\nFAKE"),
        ("a\x00b\x7f", "a\\x00b\\x7f"),
        ("a\u202eb\u2028c", "a\\u202eb\\u2028c"),
        ("bad\udcff.yaml", "bad\\udcff.yaml"),
    ],
)
def test_what_a_terminal_acts_on_is_escaped_and_the_rest_kept(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # escaping twice changes nothing


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("a/w/llama.yaml", "a/w/llama.yaml"),
        ("a/w/café.yaml", "a/w/café.yaml"),
        # what ``git diff`` writes for these names (core.quotePath's octal for the rest)
        ("a/evil\x1b[2J\nx\u202e.yaml", '"a/evil\\033[2J\\nx\\342\\200\\256.yaml"'),
        ('a/say "hi"\t\\.yaml', '"a/say \\"hi\\"\\t\\\\.yaml"'),
        ("a/bad\udcff.yaml", '"a/bad\\377.yaml"'),
    ],
)
def test_a_diff_header_quotes_a_path_as_git_does(path: str, header: str) -> None:
    assert git_quoted(path) == header


def test_an_error_quoting_a_key_or_value_from_the_file_escapes_it() -> None:
    error = WorkloadError("w/a\x1b.json", "unknown key\nFAKE: 0 failed", field="\x1b[2Jk")
    assert str(error) == "w/a\\x1b.json: field '\\x1b[2Jk': unknown key\\nFAKE: 0 failed"
    assert error.field == "\x1b[2Jk"  # the field itself stays as the file has it


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("thought", {"text": "clearing\x1b[2J the screen\u202e"}),
        ("tool_call", {"name": "parse_config", "input": {"file_path": "x\u202e\x1b.yaml"}}),
        ("error", {"message": "bad\x1b[31m"}),
    ],
)
def test_a_live_line_escapes_what_a_model_or_a_file_put_in_it(
    kind: str, data: dict[str, object]
) -> None:
    line = live_line(kind, data)
    assert line.isprintable()
    assert "\\x1b" in line or "\\u202e" in line
