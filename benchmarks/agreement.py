"""The selection figures of any artifact on a distil run's held-out faces: agreement with the
teacher (top-1, KL, the teacher's rare classes) on the select half, which decisions read, and on
the untouched half, which none does (:mod:`motivnet_edge.compress.distil.selection`). Artifacts
from other runs can be measured on one run's faces when both held the same faces out (the split
is by content hash): how a new student is compared with the shipped one.

    python -m motivnet_edge.benchmarks.agreement --run OUT A.onnx B.tflite [--json F]
        [--jitter 0.25] [--mirror-average]

Beside the artifacts, the teacher is measured against itself on views that keep the
expression: the mirror image of each face (the run's cached rows) and the face boxed a little
differently (``--jitter S``: turned up to 8xS degrees, scaled up to 6xS %, shifted up to 4xS %,
as a detector's box moves between frames). How often the teacher changes its own answer there
says how much of its decision rests on details no expression is made of: a student that
matches it more closely than that is learning the teacher's noise. ``--mirror-average`` adds a
row per artifact run on the face and its mirror image, logits averaged (twice the time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError

COLUMNS = ("agreement", "kl", "rare_agreement")


def held_out(run_out: Path) -> dict:
    """A run's held-out faces (``faces``), the teacher's class logits for them and for their
    mirror images (``teacher``, ``mirrored``; None for a run that kept none), their hashes, the
    run's class order and its record."""
    from motivnet_edge.compress.distil.data import CropSet, split_index
    from motivnet_edge.compress.runfolder import RunFolder

    folder = RunFolder(run_out)
    run = folder.read_record()
    crops_path, teacher_path = folder.faces(calibrated=False)
    crops = CropSet.load(crops_path)
    _, val = split_index(crops.hashes, run.val_fraction)
    n = len(run.classes)
    mirrored = np.load(folder.teacher_mirrored)[val][:, :n] \
        if folder.teacher_mirrored.is_file() else None
    return {"faces": [crops.crops[i] for i in val], "teacher": np.load(teacher_path)[val][:, :n],
            "mirrored": mirrored, "hashes": [crops.hashes[i] for i in val],
            "classes": run.classes, "record": run}


def teacher_rows(data: dict, select: np.ndarray, jitter: float, seed: int = 0) -> dict:
    """The teacher's figures against its own answers on the mirror images and (``jitter`` > 0)
    on the faces boxed differently, by the same rule as a student's."""
    from motivnet_edge.compress.distil.augment import moved_face
    from motivnet_edge.compress.distil.selection import halves_figures
    from motivnet_edge.compress.models.teachers import reload_teacher

    rows = {}
    if data["mirrored"] is not None:
        rows["teacher, mirror image"] = halves_figures(data["mirrored"], data["teacher"], select)
    if jitter > 0:
        teacher = reload_teacher(data["record"].teacher)
        rng = np.random.default_rng(seed)
        moved = [moved_face(face, rng, jitter) for face in data["faces"]]
        logits = np.concatenate([teacher.predict(moved[i:i + 64])
                                 for i in range(0, len(moved), 64)])
        rows[f"teacher, box moved (jitter {jitter:g})"] = halves_figures(
            logits[:, :len(data["classes"])], data["teacher"], select)
    return rows


def measure(run_out: Path, artifacts: list[Path], jitter: float = 0.0,
            mirror_average: bool = False) -> dict:
    from motivnet_edge.benchmarks.measure import engine_runner
    from motivnet_edge.compress.distil.selection import halves_figures, held_out_halves
    from motivnet_edge.targets.engine import EngineOptions

    data = held_out(run_out)
    faces, teacher, classes = data["faces"], data["teacher"], data["classes"]
    select = held_out_halves(data["hashes"])
    rows = {}
    for path in artifacts:
        runner = engine_runner(path, None, EngineOptions(threads=1)).open()
        try:
            logits = runner.logits(faces, classes)
            rows[str(path)] = halves_figures(logits, teacher, select)
            if mirror_average:
                both = (logits + runner.logits([f.mirrored() for f in faces], classes)) / 2
                rows[f"{path} (with its mirror image)"] = halves_figures(both, teacher, select)
        finally:
            runner.close()
    return {"run": str(run_out), "held_out": len(faces), "select": int(select.sum()),
            "rows": rows, "teacher_rows": teacher_rows(data, select, jitter)}


def table(result: dict) -> str:
    head = "| row | " + " | ".join(f"{h} {c}" for h in ("select", "untouched")
                                    for c in COLUMNS) + " |"
    lines = [head, "|---" * (1 + 2 * len(COLUMNS)) + "|"]
    for name, figures in {**result["rows"], **result.get("teacher_rows", {})}.items():
        cells = [f"{figures.get(f'{h}_{c}', float('nan')):.4f}" for h in ("select", "untouched")
                 for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.agreement``: the selection figures of the artifacts
    and the teacher's own steadiness, printed as a table (and written as JSON with --json)."""
    from motivnet_edge.benchmarks.host import cpu_info

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("artifacts", type=Path, nargs="*")
    p.add_argument("--json", type=Path, help="write the figures here too")
    p.add_argument("--jitter", type=float, default=0.25,
                   help="the teacher on each face boxed differently by this strength (0: not "
                        "measured; the run's teacher file is read)")
    p.add_argument("--mirror-average", action="store_true",
                   help="also each artifact on the face and its mirror image, logits averaged")
    args = p.parse_args(argv)
    if not 0 <= args.jitter <= 3:
        print(f"error: --jitter {args.jitter:g} is outside 0..3", file=sys.stderr)
        return 2
    try:
        result = {"cpu": cpu_info(), **measure(args.run, args.artifacts, args.jitter,
                                               args.mirror_average)}
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
