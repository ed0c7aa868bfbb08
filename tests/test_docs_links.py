"""Every relative link of the README and the docs pages resolves: each ``](path)`` target exists,
and each ``#anchor`` names a heading of the page it points at (GitHub's heading ids)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

# Pages the README links that other developers are writing on their own branches; until they land a
# link to them may dangle (one that exists is checked like any other).
PENDING = {"docs/frame-tasks.md", "docs/long-videos.md", "docs/demo-tracks.md"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _pages() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(p for p in listed if (REPO / p).is_file())


def _prose(text: str) -> str:
    """The page without its fenced code blocks (a ``](`` in code is no link)."""
    return FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation (and code backticks) dropped, spaces to
    hyphens. ``The built-in demo (`data.source: demo`, the default)`` ->
    ``the-built-in-demo-datasource-demo-the-default``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(_prose(page.read_text(encoding="utf-8"))):
        anchor, n = github_anchor(heading), 1
        while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2
            anchor = f"{github_anchor(heading)}-{n}"
            n += 1
        found.add(anchor)
    return found


def broken_links(page: str) -> list[str]:
    source = REPO / page
    broken = []
    for target in LINK.findall(_prose(source.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        name = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
        if not resolved.exists():
            if name not in PENDING:
                broken.append(f"{target}: no such file")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {name}")
    return broken


def test_the_pages_are_found() -> None:
    pages = _pages()
    assert {"README.md", "docs/params.md", "docs/pipeline.md", "tests/README.md", "benchmarks/README.md"} <= set(pages)


@pytest.mark.parametrize("page", _pages())
def test_every_relative_link_resolves(page: str) -> None:
    assert broken_links(page) == [], page


def test_the_checker_catches_a_missing_file_and_anchor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.test_docs_links as module

    monkeypatch.setattr(module, "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## The built-in demo (`data.source: demo`, the default)\n## A\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#the-built-in-demo-datasource-demo-the-default) [ok](docs/a.md#a-1) [ok](#top)\n"
        "[gone](docs/b.md) [bad](docs/a.md#nowhere) [web](https://dvc.org) [pending](docs/frame-tasks.md)\n"
        "```\n[in code](docs/c.md)\n```\n# Top\n"
    )
    assert broken_links("README.md") == [
        "docs/b.md: no such file",
        "docs/a.md#nowhere: no heading #nowhere in docs/a.md",
    ]
