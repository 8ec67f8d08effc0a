"""What a move toward the student's boundary (``distil --boundary``) does to the student and to
its teacher: on a run's held-out faces, each face moved by a signed gradient step of a fixed
size toward the student's runner-up class (:mod:`motivnet_edge.compress.distil.boundary`), the
teacher run on the same move of its own cut. For each step: how often the student's and the
teacher's top-1 change, how often the teacher follows the student to the same new class, and
their agreement before and after. A move that flips the student and not the teacher is a face
that teaches the student where its boundary is wrong.

    python -m motivnet_edge.experiments.boundary_probe --run OUT [--weights STATE.pth]
        [--steps 2,4,8] [--noise] [--json F] [--plot P.png [--name L] [--against L=F.json]]
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.benchmarks.agreement import held_out
from motivnet_edge.benchmarks.host import cpu_info
from motivnet_edge.compress.distil.augment import whole_face
from motivnet_edge.compress.distil.boundary import boundary_direction, moved_views
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import write_json
from motivnet_edge.targets.preprocess import cut, normalize_batch


def _student_top1(model, cuts: np.ndarray, spec) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(normalize_batch(cuts, spec))).argmax(1).numpy()


def probe(model, spec, teacher, faces, steps: list[float], batch: int = 64,
          noise: np.random.Generator | None = None) -> dict:
    """Per step (levels): ``student_flips``, ``teacher_flips`` (shares of faces whose top-1
    changed), ``teacher_follows`` (of the faces the student changed on, the share where the
    teacher changed to the same class), ``agreement`` after the move; ``agreement_before``.
    ``noise``: each pixel's sign drawn at random from it instead of the student's gradient's
    (how much of a change is the direction's, and how much any invisible noise's)."""
    counts = {s: np.zeros(4) for s in steps}
    before, n = 0, len(faces)
    for i in range(0, n, batch):
        part = faces[i:i + batch]
        cuts = [np.stack([cut(f.image, whole_face(f), c) for f in part])
                for c in (spec, teacher.crop)]
        sign = boundary_direction(model, cuts[0], spec) if noise is None else \
            noise.choice(np.array([-1.0, 1.0], np.float32), cuts[0].shape)
        s0, t0 = _student_top1(model, cuts[0], spec), teacher.predict_cut(cuts[1]).argmax(1)
        before += int((s0 == t0).sum())
        for step in steps:
            mine, theirs = moved_views(cuts, np.arange(len(part)), sign * np.float32(step))
            s1, t1 = _student_top1(model, mine, spec), teacher.predict_cut(theirs).argmax(1)
            flipped = s1 != s0
            counts[step] += [flipped.sum(), (t1 != t0).sum(), (flipped & (t1 == s1)).sum(),
                             (s1 == t1).sum()]
    rows = {}
    for step, (sf, tf, follows, agree) in counts.items():
        rows[f"{step:g}"] = {"student_flips": sf / n, "teacher_flips": tf / n,
                             "teacher_follows": follows / sf if sf else None,
                             "agreement": agree / n}
    return {"faces": n, "agreement_before": before / n, "steps": rows}


def table(result: dict) -> str:
    lines = ["| step (levels) | student's top-1 changes | teacher's top-1 changes | teacher "
             "follows the student | agreement after |", "|---|---|---|---|---|"]
    for step, r in result["steps"].items():
        follows = "-" if r["teacher_follows"] is None else f"{r['teacher_follows']:.3f}"
        lines.append(f"| {step} | {r['student_flips']:.3f} | {r['teacher_flips']:.3f} | "
                     f"{follows} | {r['agreement']:.4f} |")
    return "\n".join([f"{result['faces']} held-out faces, agreement before the move "
                      f"{result['agreement_before']:.4f}", *lines])


def plot(results: dict[str, dict], path: Path, title: str) -> None:
    """Each result's share of faces whose top-1 changed against the step: the teacher's solid,
    the student's dashed, one colour per result (its label)."""
    from motivnet_edge.benchmarks.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2 + 0.3 * len(results)))
    for i, (label, result) in enumerate(results.items()):
        steps = [float(s) for s in result["steps"]]
        for key, style, who in (("teacher_flips", "-", "teacher"), ("student_flips", "--",
                                                                      "student")):
            ax.plot(steps, [r[key] for r in result["steps"].values()], style, marker="o",
                    color=f"C{i}", label=f"{who}, {label}")
    ticks = sorted({float(s) for result in results.values() for s in result["steps"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{s:g}" for s in ticks])
    ax.set_xlabel("move of every pixel (levels of 255)")
    ax.set_ylabel("share of held-out faces whose top-1 changed")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8,
               frameon=False)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)
    fig.tight_layout(rect=(0, 0.06 * ((len(results) * 2 + 1) // 2), 1, 1))
    save(fig, path)


def _against(items: list[str]) -> dict[str, dict]:
    """``--against LABEL=probe.json`` items read as LABEL -> result."""
    out = {}
    for item in items:
        label, sep, file = item.partition("=")
        if not sep or not Path(file).is_file():
            raise MotivnetError(f"--against {item!r}: not LABEL=FILE (a probe's --json)")
        try:
            result = json.loads(Path(file).read_text())
        except ValueError as exc:
            raise MotivnetError(f"--against {file}: not JSON ({exc})") from exc
        if not isinstance(result, dict) or "steps" not in result:
            raise MotivnetError(f"--against {file}: not a probe's --json (no 'steps')")
        out[label] = result
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: a run's student (or ``--weights``) and teacher under moves toward the
    student's boundary, on the run's held-out faces."""
    ap = argparse.ArgumentParser(prog="python -m motivnet_edge.experiments.boundary_probe",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished distil run folder")
    ap.add_argument("--weights", type=Path, help="a state dict for the run's student "
                    "(default: the run's own)")
    ap.add_argument("--steps", default="2,4,8", help="step sizes in pixel levels")
    ap.add_argument("--noise", action="store_true", help="random signs (seeded) instead of "
                    "the student's gradient's: the same size of move in no chosen direction")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="draw the changes against the step here (.png)")
    ap.add_argument("--name", default="this run", help="this run's label in the plot")
    ap.add_argument("--against", action="append", default=[], metavar="LABEL=JSON",
                    help="another probe's --json beside it in the plot (repeatable)")
    ap.add_argument("--title", default="What a move of every pixel changes")
    args = ap.parse_args(argv)
    try:
        steps = [float(s) for s in args.steps.split(",")]
    except ValueError:
        print(f"error: --steps {args.steps!r}: give numbers separated by commas", file=sys.stderr)
        return 2
    try:
        from motivnet_edge.compress.distil.distilled import load_distilled

        others = _against(args.against)
        run = load_distilled(args.run)
        if args.weights:
            if not args.weights.is_file():
                raise MotivnetError(f"--weights {args.weights}: no such file")
            run.model.load_state_dict(torch.load(args.weights, map_location="cpu",
                                                 weights_only=True))
        data = held_out(args.run)
        result = probe(run.model.eval(), run.spec, data["teacher_model"](), data["faces"], steps,
                       noise=np.random.default_rng(0) if args.noise else None)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["direction"] = "random signs" if args.noise else "the student's gradient"
    result["cpu"] = cpu_info()
    print(table(result))
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot({args.name: result, **others}, args.plot, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
