"""The README stays a front door (at most 8 kB), every relative link in it, in ``docs/`` and in
the results index points at a file that exists, and the presets' table in docs/compress.md says
what ``compress/settings.py`` holds."""

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


def preset_table_mismatches(text: str) -> list[str]:
    """Each ``| `--flag` / `--flag` | demo | real | patient |`` row of the presets' table (a
    column per preset) against :func:`preset`: one line per cell that differs, or per row whose
    columns are not the presets'."""
    from motivnet_edge.compress.settings import PRESETS, preset

    def read(cell: str):
        return {"on": True, "off": False}[cell] if cell in ("on", "off") else float(cell)

    bad = []
    for line in text.splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 1 + len(PRESETS):
            bad.append(f"{cells[0]}: {len(cells) - 1} columns, {len(PRESETS)} presets")
            continue
        flags = [flag.strip("` -").replace("-", "_") for flag in cells[0].split(" / ")]
        for kind, cell in zip(PRESETS, cells[1:], strict=True):
            if cell.startswith("as "):
                continue
            settings = preset(kind)
            values = [value.strip() for value in cell.split(" / ")]
            for flag, value in zip(flags, values, strict=True):
                if read(value) != settings[flag]:
                    bad.append(f"{kind} --{flag}: table {value}, settings {settings[flag]}")
    return bad


def test_the_presets_table_says_what_settings_hold():
    text = (ROOT / "docs" / "compress.md").read_text()
    assert text.count("| `--") >= 5
    assert preset_table_mismatches(text) == []


def test_a_preset_table_that_drifted_is_found():
    row = "| `--epochs` / `--lr` | 4 / 2e-3 | 7 / 1e-3 | 30 / 1e-3 |"
    assert preset_table_mismatches(row) == ["patient --lr: table 1e-3, settings 0.002"]
    assert preset_table_mismatches("| `--zoom` | 0 | 0 |") == ["`--zoom`: 2 columns, 3 presets"]
