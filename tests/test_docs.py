"""The README stays a front door (at most 8 kB) and every relative link in it, in ``docs/`` and
in the results index points at a file that exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "results" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(pages: list[Path]) -> list[str]:
    bad = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
                bad.append(f"{name}: {target}")
    return bad


def test_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_bytes()) <= 8 * 1024


def test_every_relative_link_resolves():
    assert len(PAGES) >= 8
    assert broken_links(PAGES) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#x) [web](https://example.org) [gone](nowhere.md)\n")
    assert broken_links([page]) == ["page.md: nowhere.md"]
