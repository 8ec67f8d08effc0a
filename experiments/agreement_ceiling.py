"""How much top-1 agreement a student's closeness to the teacher buys, and how long a schedule
a target would need. Figures from runs already made, beside a model of what is left:

- **the frontier**: every epoch of the given runs as (held-out KL from the teacher, held-out
  agreement), the last epochs marked; where more closeness (a lower KL) stops buying
  agreement, the misses left are not what training is still learning.
- **noisy copies of the teacher**: the teacher's own logits on the run's held-out faces with
  random noise added (independent, normal, one sigma for every class), at each noise level the
  copies' mean KL and agreement. The KL at which they reach ``--target`` is what a student with
  the teacher's function and small random errors would need; a student below the copies'
  curve misses more than its KL explains.
- **KL against schedule length**: each run's last epoch, ``KL = c * epochs ** -alpha`` fit by
  least squares on logs, then the epochs (and hours at the runs' own pace) that the copies'
  KL would take. Pass runs of one recipe that differ in length only.

    python -m motivnet_edge.experiments.agreement_ceiling --run OUT --target 0.92 \\
        --json C.json --plot C.png p10=history-10.json p30=history-30.json p45=history-45.json

``OUT`` is any distil run that held out the same faces (the split is by content hash); only its
teacher rows are read. ``--half`` picks the held-out half (``select``, ``untouched``, or
``both``: the two halves' faces together, the least noisy). A history is a run's
``work/history.json`` (or a copy); the figures are those of the weights its last entry kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError

HALVES = ("select", "untouched", "both")
SIGMAS = np.round(np.concatenate([np.arange(0.0, 1.0, 0.025), np.arange(1.0, 3.01, 0.05)]), 3)


def read_history(path: Path, half: str, select_share: float) -> dict:
    """One run's epochs as [epoch, agreement, KL] on ``half`` (for both halves weighted by
    ``select_share``, the select half's share of the faces), its length and mean seconds per
    epoch; a file that is not a run's history is named with the field it lacks."""
    from motivnet_edge.compress.distil.selection import kept_prefix

    try:
        entries = json.loads(Path(path).read_text())["history"]
        prefix = kept_prefix(entries[-1])
        w = {"select": 1.0, "untouched": 0.0, "both": select_share}[half]
        points = [[e["epoch"], *(w * e[f"{prefix}select_{f}"]
                                 + (1 - w) * e[f"{prefix}untouched_{f}"]
                                 for f in ("agreement", "kl"))] for e in entries]
        seconds = float(np.mean([e["seconds"] for e in entries]))
    except (OSError, ValueError) as exc:
        raise MotivnetError(f"{path}: not a readable history ({exc})") from None
    except (KeyError, TypeError, IndexError) as exc:
        raise MotivnetError(f"{path}: not a distil run's history (no field {exc})") from None
    return {"path": str(path), "epochs": len(entries), "seconds_per_epoch": seconds,
            "kept": "average" if prefix else "running", "points": points}


def noisy_copies(teacher: np.ndarray, sigmas=SIGMAS, draws: int = 20, seed: int = 0) -> dict:
    """The teacher's logits with normal noise of each sigma added: the copies' mean KL from the
    teacher and mean top-1 agreement with it, over ``draws`` draws per sigma."""
    from motivnet_edge.targets.engine import kl_divergence

    rng = np.random.default_rng(seed)
    teacher = np.asarray(teacher, np.float64)
    top = teacher.argmax(1)
    agreement, kl = [], []
    for sigma in sigmas:
        noisy = teacher + sigma * rng.standard_normal((draws, *teacher.shape))
        agreement.append(float(np.mean(noisy.argmax(2) == top)))
        kl.append(float(np.mean(kl_divergence(np.broadcast_to(teacher, noisy.shape), noisy))))
    return {"sigma": [float(s) for s in sigmas], "agreement": agreement, "kl": kl}


def kl_at(target: float, curve: dict) -> float | None:
    """The copies' KL where their agreement falls to ``target`` (linear between the two noise
    levels around it); None where the curve never reaches it."""
    a, k = np.asarray(curve["agreement"]), np.asarray(curve["kl"])
    below = np.nonzero(a < target)[0]
    if not len(below) or below[0] == 0:
        return None
    i = below[0]
    t = (a[i - 1] - target) / (a[i - 1] - a[i])
    return float(k[i - 1] + t * (k[i] - k[i - 1]))


def power_fit(lengths, kls) -> tuple[float, float]:
    """``(c, alpha)`` of ``KL = c * epochs ** -alpha``, least squares on logs; at least two
    distinct lengths are needed."""
    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(kls, float))
    if len(set(lengths)) < 2:
        raise MotivnetError("KL against schedule length needs runs of at least two lengths "
                            f"(given: {sorted(set(lengths))})")
    slope, intercept = np.polyfit(x, y, 1)
    return float(np.exp(intercept)), float(-slope)


def epochs_for(kl: float, c: float, alpha: float) -> float | None:
    """Epochs at which the fit reaches ``kl``; None where the fit does not fall with length."""
    return float((c / kl) ** (1 / alpha)) if alpha > 0 else None


def summarise(runs: dict, curve: dict, target: float, fit: list[str]) -> dict:
    """The figures the command prints and writes: each run's last point against the copies'
    agreement at its KL, the copies' KL at ``target``, the length fit over the runs ``fit``
    names and what it asks."""
    def copies_at(kl: float) -> float:
        return float(np.interp(kl, curve["kl"], curve["agreement"]))

    last = {label: {"epochs": r["epochs"], "agreement": r["points"][-1][1],
                    "kl": r["points"][-1][2], "copies_agreement": copies_at(r["points"][-1][2])}
            for label, r in runs.items()}
    c, alpha = power_fit([runs[f]["epochs"] for f in fit],
                         [runs[f]["points"][-1][2] for f in fit])
    needed = kl_at(target, curve)
    epochs = epochs_for(needed, c, alpha) if needed else None
    pace = float(np.median([runs[f]["seconds_per_epoch"] for f in fit]))
    return {"target": target, "runs": last, "copies_kl_at_target": needed,
            "fit": {"c": c, "alpha": alpha, "runs": fit}, "epochs_for_target": epochs,
            "seconds_per_epoch": pace,
            "hours_for_target": epochs * pace / 3600 if epochs else None}


def plot(runs: dict, curve: dict, summary: dict, path: Path, title: str) -> None:
    """Agreement against KL (every epoch, the last ones marked, the copies' curve) beside KL
    against schedule length with the fit carried to the target's KL."""
    from motivnet_edge.benchmarks.figures import pyplot, save

    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    # the last epochs' neighbourhood: early epochs far off to the right are left out
    top = 1.6 * max(r["points"][-1][2] for r in runs.values())
    keep = np.asarray(curve["kl"]) <= top
    ax.plot(np.asarray(curve["kl"])[keep], np.asarray(curve["agreement"])[keep], "k--",
            label="teacher + random logit noise")
    for label, r in runs.items():
        pts = np.asarray(r["points"])
        line, = ax.plot(pts[:, 2], pts[:, 1], ".", alpha=0.45, ms=4)
        ax.plot(pts[-1, 2], pts[-1, 1], "o", color=line.get_color(), label=label)
        if label in summary["fit"]["runs"]:
            bx.plot(r["epochs"], pts[-1, 2], "o", color=line.get_color())
    ax.axhline(summary["target"], color="grey", lw=0.8)
    ax.set(xlabel="held-out KL from the teacher (nats)", ylabel="held-out top-1 agreement",
           title="agreement against closeness", xlim=(0, top),
           ylim=(float(np.interp(top, curve["kl"], curve["agreement"])) - 0.03, 1.0))
    ax.legend(fontsize=7)
    fit, end = summary["fit"], summary["epochs_for_target"] or 0
    lengths = [runs[f]["epochs"] for f in fit["runs"]]
    xs = np.geomspace(min(lengths), max([end, *lengths]), 100)
    bx.plot(xs, fit["c"] * xs ** -fit["alpha"], "k-", lw=0.8,
            label=f"KL = {fit['c']:.3g} x epochs^-{fit['alpha']:.2f}")
    if summary["copies_kl_at_target"]:
        bx.axhline(summary["copies_kl_at_target"], color="grey", lw=0.8,
                   label=f"copies' KL at {summary['target']}")
    bx.set(xscale="log", yscale="log", xlabel="schedule length (epochs)",
           ylabel="last epoch's held-out KL", title="closeness against schedule length")
    bx.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


def _parse_runs(items: list[str]) -> dict[str, Path]:
    runs = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise MotivnetError(f"{item}: a run is given as LABEL=HISTORY.json")
        if label in runs:
            raise MotivnetError(f"{label}: two runs under one label")
        runs[label] = Path(path)
    return runs


def _teacher_rows(run_out: Path, half: str) -> tuple[np.ndarray, float]:
    """The teacher's class logits on ``half`` of the run's held-out faces, and the select
    half's share of them all."""
    from motivnet_edge.benchmarks.agreement import held_out

    try:
        faces = held_out(run_out)
    except (OSError, ValueError, KeyError) as exc:
        raise MotivnetError(f"{run_out}: not a distil run with teacher rows ({exc})") from None
    groups = faces["groups"]
    share = float(groups["select"].sum() / (groups["select"].sum() + groups["untouched"].sum()))
    rows = groups["select"] | groups["untouched"] if half == "both" else groups[half]
    return faces["teacher"][rows], share


def _report(summary: dict, half: str, faces: int) -> None:
    print(f"held-out faces ({half}): {faces}")
    print(f"{'run':<16} {'epochs':>6} {'agreement':>9} {'KL':>7} {'copies at its KL':>16}")
    for label, r in summary["runs"].items():
        print(f"{label:<16} {r['epochs']:>6} {r['agreement']:>9.4f} {r['kl']:>7.4f} "
              f"{r['copies_agreement']:>16.4f}")
    fit, kl = summary["fit"], summary["copies_kl_at_target"]
    print(f"KL = {fit['c']:.4g} x epochs^-{fit['alpha']:.3f} over the last epochs of "
          + ", ".join(fit["runs"]))
    if kl is None:
        print(f"noisy copies of the teacher never reach {summary['target']}")
        return
    print(f"noisy copies of the teacher reach {summary['target']} at KL {kl:.4f}")
    if summary["epochs_for_target"]:
        print(f"the fit reaches that KL at {summary['epochs_for_target']:.0f} epochs: "
              f"{summary['hours_for_target']:.1f} h at {summary['seconds_per_epoch']:.0f} s "
              "per epoch (the runs' median pace)")


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.agreement_ceiling``: the runs' agreement against
    their KL beside noisy copies of the teacher, and the schedule a target agreement asks."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=HISTORY.json, one per run")
    p.add_argument("--run", type=Path, required=True,
                   help="a distil run's folder whose held-out faces and teacher rows are read")
    p.add_argument("--half", choices=HALVES, default="both")
    p.add_argument("--target", type=float, default=0.92, help="the agreement asked for")
    p.add_argument("--draws", type=int, default=20, help="noise draws per level")
    p.add_argument("--fit", help="LABEL,LABEL...: the runs of one recipe that KL against "
                   "schedule length is fit on (default: every run)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--plot", type=Path, help="write the two panels here (.png)")
    p.add_argument("--title", default="held-out agreement, closeness and schedule length")
    args = p.parse_args(argv)
    try:
        if not 0 < args.target < 1:
            raise MotivnetError(f"--target {args.target}: an agreement between 0 and 1")
        if args.draws < 1:
            raise MotivnetError(f"--draws {args.draws}: at least 1")
        paths = _parse_runs(args.runs)
        fit = args.fit.split(",") if args.fit else list(paths)
        for label in set(fit) - set(paths):
            raise MotivnetError(f"--fit {label}: no run has that label")
        for path in paths.values():  # named before the run's faces are loaded
            read_history(path, args.half, 0.5)
        teacher, share = _teacher_rows(args.run, args.half)
        runs = {label: read_history(path, args.half, share) for label, path in paths.items()}
        curve = noisy_copies(teacher, draws=args.draws)
        summary = summarise(runs, curve, args.target, fit)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(summary, args.half, len(teacher))
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, {"half": args.half, "faces": len(teacher), **summary,
                               "copies": curve, "histories": runs})
    if args.plot:
        plot(runs, curve, summary, args.plot, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
