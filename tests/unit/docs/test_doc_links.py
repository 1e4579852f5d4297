"""Every relative link in README.md and docs/ points at a file, and at a heading, that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: and the like are not checked (no network in tests)
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_slug_follows_github() -> None:
    assert slug("Turns, tokens, cost and events") == "turns-tokens-cost-and-events"
    assert slug("Attribution (`--goblin-attribution`)") == "attribution---goblin-attribution"
    assert slug("The `goblin_json` key") == "the-goblin_json-key"


REPO_PATH = re.compile(
    r"`((?:pytest_goblin|runner|kb|tests|benchmarks|example_project|docs)/[\w./*-]*)`"
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_repository_paths_exist(page: Path) -> None:
    """A file or folder named in backticks (`runner/analytic.py`, `kb/rules/*.yaml`) is
    there: a module that moved leaves no page pointing at its old place."""
    text = page.read_text(encoding="utf-8")
    missing = [
        name
        for name in sorted(set(REPO_PATH.findall(text)))
        if not any(ROOT.glob(name.rstrip("/")))
    ]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"
