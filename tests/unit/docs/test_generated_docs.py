"""The generated pages in docs/ are current, and the check can tell when they are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_goblin import docgen
from pytest_goblin.kb.loader import load_kb

DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.mark.parametrize("name", sorted(docgen.PAGES))
def test_generated_page_is_current(name: str) -> None:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing: run {docgen.REGENERATE}"
    assert path.read_text(encoding="utf-8") == docgen.render(name), (
        f"docs/{name} is out of date (its source changed since it was generated): "
        f"run {docgen.REGENERATE} and commit the result"
    )


def test_default_docs_dir_is_this_checkout() -> None:
    assert docgen.default_docs_dir() == DOCS


def test_check_reports_an_edited_or_missing_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = docgen.write_pages(tmp_path)
    assert sorted(p.name for p in written) == sorted(docgen.PAGES)
    assert docgen.stale_pages(tmp_path) == []
    assert docgen.main(["--docs-dir", str(tmp_path), "--check"]) == 0
    assert docgen.write_pages(tmp_path) == []  # nothing changed, nothing rewritten

    rules = tmp_path / "rules.md"
    rules.write_text(rules.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    assert docgen.stale_pages(tmp_path) == ["rules.md"]
    assert docgen.main(["--docs-dir", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{rules} is out of date: run python -m pytest_goblin.docgen" in err

    rules.unlink()
    assert docgen.stale_pages(tmp_path) == ["rules.md"]
    assert docgen.main(["--docs-dir", str(tmp_path)]) == 0
    assert docgen.stale_pages(tmp_path) == []


def test_rules_page_has_a_section_and_an_index_entry_per_rule() -> None:
    text = docgen.render("rules.md")
    kb = load_kb()
    for rule in kb:
        assert f"\n### {rule.id}\n" in text
        assert f"| [`{rule.id}`](#{rule.id}) | {rule.category} | {rule.kind} |" in text
        for url in rule.citation:
            assert f"- <{url}>" in text
    assert f"The {len(kb)} built-in rules" in text


def test_a_page_name_can_be_registered_once() -> None:
    with pytest.raises(ValueError, match=r"two generators for docs/rules\.md"):
        docgen.page("rules.md")(lambda: "")
