"""Every relative link in the README and docs/ reaches a file, and every `#anchor` a heading of
that file, as GitHub renders them: the README is split into pages, and a moved section must not
leave a link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(page: Path) -> str:
    """The page without its code blocks, where `#` starts a comment, not a heading."""
    return FENCE.sub("", page.read_text())


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page), flags=re.M):
        anchor, n = github_anchor(heading), 1
        while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2
            anchor = f"{github_anchor(heading)}-{n}"
            n += 1
        found.add(anchor)
    return found


def relative_links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(page))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_github_anchors():
    assert github_anchor("Exact's clock") == "exacts-clock"
    assert github_anchor("Quick start: the sandbox (no Exact account needed)") == (
        "quick-start-the-sandbox-no-exact-account-needed"
    )
    assert github_anchor("Streams with a choice of API") == "streams-with-a-choice-of-api"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path):
    assert relative_links(page) or page.name != "README.md"
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO_ROOT)}")
    assert broken == []


def test_nothing_links_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text, page
        for target in relative_links(page):
            linked = (page.parent / target.partition("#")[0]).resolve()
            assert linked.is_relative_to(REPO_ROOT), (page, target)


def test_every_docs_page_is_in_the_index():
    index = (REPO_ROOT / "docs" / "README.md").read_text()
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"]({page.name}" in index, page.name
