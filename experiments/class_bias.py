"""Is the student's disagreement with its teacher a shift of class priors? A per-class bias
added to an artifact's logits, fit without labels on the select half of a run's held-out faces
(the bias that minimises the KL from the teacher, which is the one that makes the student's mean
class probabilities the teacher's), then every selection figure measured with and without it
on both halves (and with ``--labelled``, on labelled photos' faces, labels not read). Prints a
table and the bias; ``--json`` writes both.

    python -m motivnet_edge.experiments.class_bias --run OUT student-int8.onnx \\
        [--labelled faces-dev/labels.csv] [--json F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.agreement import figures, held_out, labelled, table
from motivnet_edge.benchmarks.host import cpu_info
from motivnet_edge.benchmarks.measure import engine_runner
from motivnet_edge.targets.engine import EngineOptions, softmax
from motivnet_edge.targets.errors import MotivnetError


def fit_bias(student: np.ndarray, teacher: np.ndarray, rounds: int = 500) -> np.ndarray:
    """The per-class bias ``b`` whose ``softmax(student + b)`` has the mean class probabilities
    of ``softmax(teacher)``: the stationary point of the mean KL from the teacher, which is
    convex in ``b``. Fixed-point rounds on the log-ratio of the two means; zero-mean."""
    want = softmax(teacher).mean(0)
    b = np.zeros(student.shape[1])
    for _ in range(rounds):
        step = np.log(want / softmax(student + b).mean(0))
        b += step
        if np.abs(step).max() < 1e-9:
            break
    return b - b.mean()


def compare(path: Path, data: dict, dev: dict | None) -> dict:
    """The artifact's figures on ``data`` (and ``dev``) with and without the bias fit on
    ``data``'s select half."""
    runner = engine_runner(path, None, EngineOptions(threads=2)).open()
    try:
        logits = runner.logits(data["faces"], data["classes"])
        dev_logits = runner.logits(dev["faces"], dev["classes"]) if dev else None
    finally:
        runner.close()
    select = data["groups"]["select"]
    bias = fit_bias(logits[select], data["teacher"][select])
    out = {"bias": dict(zip(data["classes"], bias.round(4).tolist(), strict=True)),
           "rows": {str(path): figures(logits, data),
                    f"{path} + bias": figures(logits + bias, data)}}
    if dev is not None:
        out["labelled_rows"] = {str(path): figures(dev_logits, dev),
                                f"{path} + bias": figures(dev_logits + bias, dev)}
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.class_bias``: the artifact's selection figures
    with and without the class bias, printed as tables (and written as JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("artifact", type=Path)
    p.add_argument("--labelled", type=Path, help="also on these labelled photos' faces")
    p.add_argument("--json", type=Path, help="write the figures and the bias here too")
    args = p.parse_args(argv)
    try:
        data = held_out(args.run)
        dev = labelled(args.run, args.labelled) if args.labelled else None
        result = {"cpu": cpu_info(), "run": str(args.run), **compare(args.artifact, data, dev)}
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("bias fit on the select half: " + ", ".join(f"{c} {b:+.3f}"
                                                     for c, b in result["bias"].items()))
    for rows, where in (("rows", data), ("labelled_rows", dev)):
        if rows in result:
            print(table({"groups": where["groups"], "rows": result[rows], "teacher_rows": {}}))
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
