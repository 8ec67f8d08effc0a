"""``motivnet-edge targets``: every target profile, whether it runs here, on what, and why not
(the rows come from :func:`motivnet_edge.targets.profiles.target_rows`)."""

from __future__ import annotations

import json
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.profiles import host_facts, target_rows


def add_arguments(p) -> None:
    """The command's options."""
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--artifacts", type=Path, help="a compress output folder: which of its "
                   "files each profile would run (default: every profile's first choice)")


def run(args) -> int:
    """Print one line per profile (or JSON with the host's facts)."""
    facts = host_facts()
    folder = args.artifacts
    if folder is not None and not folder.is_dir():
        raise MotivnetError(f"--artifacts {folder} is not a folder")
    rows = target_rows(facts, folder)
    if args.json:
        print(json.dumps({"host": facts.as_dict(), "targets": rows}, indent=2))
        return 0
    for r in rows:
        mark = "yes" if r["runs_here"] else "no"
        auto = " (auto)" if r["auto"] else ""
        detail = f"{r['engine']} {r['artifact']}" if r["runs_here"] else r["why_not"]
        if r["runs_here"] and r["note"]:
            detail += f" (note: {r['note']})"
        print(f"{r['target'] + auto:<18} {mark:<4} {detail}")
    return 0
