"""Every relative link in README.md and docs/*.md leads to a file that exists and, when it
names an anchor, to a heading of that file (as GitHub renders it): text moved between the
README and docs/ must not leave a dead link behind."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from emotion_batch.config import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_PARSER = MarkdownIt("commonmark").enable("table")


def _inline_tokens(text: str) -> Iterator[Token]:
    for token in _PARSER.parse(text):
        yield from token.children or ()


def links(text: str) -> list[str]:
    """Link and image targets of a Markdown text (none from code blocks or code spans)."""
    targets: list[str] = []
    for token in _inline_tokens(text):
        target = token.attrGet("href") if token.type == "link_open" else token.attrGet("src")
        if token.type in ("link_open", "image") and isinstance(target, str):
            targets.append(target)
    return targets


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text; a repeated heading gets -1, -2, ... as on GitHub."""
    tokens = _PARSER.parse(text)
    seen: dict[str, int] = {}
    found: set[str] = set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        plain = "".join(child.content for child in inline.children or () if child.type in ("text", "code_inline"))
        base = slug(plain)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_relative_links_point_to_existing_files_and_headings(document: Path) -> None:
    broken = []
    for target in links(document.read_text()):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            continue  # another site: not checked offline
        path = (document.parent / unquote(parts.path)).resolve() if parts.path else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif parts.fragment and path.suffix == ".md" and unquote(parts.fragment) not in anchors(path.read_text()):
            broken.append(f"{target}: no heading #{parts.fragment}")
    assert not broken, f"{document.name}: {broken}"


def test_the_checker_sees_links_anchors_and_dead_ends(tmp_path: Path) -> None:
    text = "# Large collections (a million photos)\n\n## `auto` offline\n\n[a](#x) ![b](c.png)\n\n    [not](code.md)\n"
    assert links(text) == ["#x", "c.png"]
    assert anchors(text) == {"large-collections-a-million-photos", "auto-offline"}
    assert slug("Face detectors: which one (bench/detect.py)") == "face-detectors-which-one-benchdetectpy"
