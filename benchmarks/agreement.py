"""The selection figures of any artifact on a distil run's held-out faces: agreement with the
teacher (top-1, KL, the teacher's rare classes) on the select half, which decisions read, and on
the untouched half, which none does (:mod:`motivnet_edge.compress.distil.selection`). Artifacts
from other runs can be measured on one run's faces when both held the same faces out (the split
is by content hash): how a new student is compared with the shipped one.

    python -m motivnet_edge.benchmarks.agreement --run OUT A.onnx B.tflite [--json F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError

COLUMNS = ("agreement", "kl", "rare_agreement")


def held_out(run_out: Path) -> tuple[list, np.ndarray, list[str], list[str]]:
    """A run's held-out faces, the teacher's class logits for them, their hashes and the
    run's class order."""
    from motivnet_edge.compress.distil.data import CropSet, split_index
    from motivnet_edge.compress.runfolder import RunFolder

    folder = RunFolder(run_out)
    run = folder.read_record()
    crops_path, teacher_path = folder.faces(calibrated=False)
    crops = CropSet.load(crops_path)
    _, val = split_index(crops.hashes, run.val_fraction)
    teacher = np.load(teacher_path)[val][:, :len(run.classes)]
    return [crops.crops[i] for i in val], teacher, [crops.hashes[i] for i in val], run.classes


def measure(run_out: Path, artifacts: list[Path]) -> dict:
    from motivnet_edge.benchmarks.measure import engine_runner
    from motivnet_edge.compress.distil.selection import halves_figures, held_out_halves
    from motivnet_edge.targets.engine import EngineOptions

    faces, teacher, hashes, classes = held_out(run_out)
    select = held_out_halves(hashes)
    rows = {}
    for path in artifacts:
        runner = engine_runner(path, None, EngineOptions(threads=1)).open()
        try:
            rows[str(path)] = halves_figures(runner.logits(faces, classes), teacher, select)
        finally:
            runner.close()
    return {"run": str(run_out), "held_out": len(faces), "select": int(select.sum()),
            "rows": rows}


def table(result: dict) -> str:
    head = "| artifact | " + " | ".join(f"{h} {c}" for h in ("select", "untouched")
                                         for c in COLUMNS) + " |"
    lines = [head, "|---" * (1 + 2 * len(COLUMNS)) + "|"]
    for path, figures in result["rows"].items():
        cells = [f"{figures.get(f'{h}_{c}', float('nan')):.4f}" for h in ("select", "untouched")
                 for c in COLUMNS]
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.agreement``: the selection figures of the artifacts
    printed as a table (and written as JSON with --json)."""
    from motivnet_edge.benchmarks.host import cpu_info

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("artifacts", type=Path, nargs="+")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    try:
        result = {"cpu": cpu_info(), **measure(args.run, args.artifacts)}
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['held_out']} held-out faces of {args.run}, {result['select']} in the "
          f"select half")
    print(table(result))
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
