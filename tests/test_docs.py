"""The README's links into the documentation site resolve: each linked page exists and holds the linked heading
(``mkdocs build --strict`` in ``.ci/run`` checks the links between the pages themselves)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as MkDocs's ``toc`` extension makes them (code blocks skipped)."""
    anchors, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6} (.+)", line)):
            anchors.add(re.sub(r"\s+", "-", re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())))
    return anchors


def test_readme_links_resolve_and_the_readme_stays_short():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?!https?:)[^)#]*)(?:#([^)]*))?\)", readme)
    assert len(links) >= 10
    for target, anchor in links:
        path = ROOT / target
        assert path.exists(), target
        if anchor:
            assert anchor in _anchors(path), (target, anchor)
    assert len(readme.splitlines()) <= 250
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name == "index.md" or page.stem in (ROOT / "mkdocs.yml").read_text(), f"{page.name} is not in mkdocs.yml's nav"
