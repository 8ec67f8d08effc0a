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
- **the other targets**: the copies' agreement on the faces the teacher puts in its rare
  classes, and the KL at which that reaches ``--rare-target``; with ``--labelled CSV`` the
  copies on labelled photos' faces (labels not read) and the measured rows of
  ``benchmarks.agreement --labelled`` files (``--labelled-rows``) placed against them.

    python -m motivnet_edge.experiments.agreement_ceiling --run OUT --target 0.92 \\
        --json C.json --plot C.png p10=history-10.json p30=history-30.json p45=history-45.json

``OUT`` is any distil run that held out the same faces (the split is by content hash); only its
teacher rows are read. ``--half`` picks the held-out half (``select``, ``untouched``, or
``both``: the two halves' faces together, the least noisy). A run is given by its
``work/history.json`` (or a copy) or its folder, a run still going or stopped read from its
checkpoint; the figures are those of the weights its last entry kept.
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


def read_history(path: Path) -> dict:
    """One run's epochs as [epoch, agreement, KL] on each held-out half (``halves``: select,
    untouched; the weights its last entry kept), its length and mean seconds per epoch. ``path``
    is a history file, a run folder or a stopped run's (``benchmarks.curve.history_of``); a
    history that lacks a field is named with it."""
    from motivnet_edge.benchmarks.curve import history_of
    from motivnet_edge.compress.distil.selection import kept_prefix, kept_weights

    try:
        entries = history_of(Path(path))
        prefix, kept = kept_prefix(entries[-1]), kept_weights(entries[-1])
        halves = {h: [[e["epoch"], e[f"{prefix}{h}_agreement"], e[f"{prefix}{h}_kl"]]
                      for e in entries] for h in ("select", "untouched")}
        seconds = float(np.mean([e["seconds"] for e in entries]))
    except (OSError, ValueError) as exc:
        raise MotivnetError(f"{path}: not a readable history ({exc})") from None
    except (KeyError, TypeError, IndexError) as exc:
        raise MotivnetError(f"{path}: not a distil run's history (no field {exc})") from None
    return {"path": str(path), "epochs": len(entries), "seconds_per_epoch": seconds,
            "kept": kept, "halves": halves}


def on_half(history: dict, half: str, select_share: float) -> dict:
    """A :func:`read_history` run with its epochs' ``points`` on ``half`` (for both halves
    weighted by ``select_share``, the select half's share of the faces)."""
    w = {"select": 1.0, "untouched": 0.0, "both": select_share}[half]
    points = [[s[0], w * s[1] + (1 - w) * u[1], w * s[2] + (1 - w) * u[2]]
              for s, u in zip(history["halves"]["select"], history["halves"]["untouched"],
                              strict=True)]
    return {**{k: v for k, v in history.items() if k != "halves"}, "points": points}


def noisy_copies(teacher: np.ndarray, sigmas=SIGMAS, draws: int = 20, seed: int = 0) -> dict:
    """The teacher's logits with normal noise of each sigma added: the copies' mean KL from the
    teacher, their mean top-1 agreement with it and their agreement on the faces the teacher
    puts in its rare classes (:func:`~motivnet_edge.compress.distil.selection.rare_classes`),
    over ``draws`` draws per sigma."""
    from motivnet_edge.compress.distil.selection import kl_from_teacher, rare_classes

    rng = np.random.default_rng(seed)
    teacher = np.asarray(teacher, np.float64)
    top = teacher.argmax(1)
    rare = np.isin(top, rare_classes(teacher))
    curve = {"sigma": [float(s) for s in sigmas], "agreement": [], "kl": [],
             "rare_agreement": []}
    for sigma in sigmas:
        noisy = teacher + sigma * rng.standard_normal((draws, *teacher.shape))
        same = noisy.argmax(2) == top
        curve["agreement"].append(float(np.mean(same)))
        curve["rare_agreement"].append(float(np.mean(same[:, rare])) if rare.any() else None)
        curve["kl"].append(kl_from_teacher(noisy, np.broadcast_to(teacher, noisy.shape)))
    return curve


def kl_at(target: float, curve: dict, key: str = "agreement") -> float | None:
    """The copies' KL where their agreement (``key``: ``agreement`` or ``rare_agreement``)
    falls to ``target`` (linear between the two noise levels around it); None where the curve
    never reaches it."""
    if curve[key][0] is None:  # no rare-class faces
        return None
    a, k = np.asarray(curve[key], float), np.asarray(curve["kl"])
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


def summarise(runs: dict, curve: dict, targets: tuple[float, float], fit: list[str]) -> dict:
    """The figures the command prints and writes: each run's last point against the copies'
    agreement at its KL, the copies' KL at the agreement target and at the rare-class target
    (``targets``), the length fit over the runs ``fit`` names and the epochs each KL asks."""
    c, alpha = power_fit([runs[f]["epochs"] for f in fit],
                         [runs[f]["points"][-1][2] for f in fit])
    pace = float(np.median([runs[f]["seconds_per_epoch"] for f in fit]))
    out = {"target": targets[0], "rare_target": targets[1],
           "runs": {label: _against_copies(r["points"][-1][1], r["points"][-1][2], curve,
                                           epochs=r["epochs"]) for label, r in runs.items()},
           "fit": {"c": c, "alpha": alpha, "runs": fit}, "seconds_per_epoch": pace}
    for name, key, target in (("target", "agreement", targets[0]),
                              ("rare_target", "rare_agreement", targets[1])):
        needed = kl_at(target, curve, key)
        epochs = epochs_for(needed, c, alpha) if needed else None
        out[f"copies_kl_at_{name}"] = needed
        out[f"epochs_for_{name}"] = epochs
        out[f"hours_for_{name}"] = epochs * pace / 3600 if epochs else None
    needed = out["copies_kl_at_target"]
    out["copies_rare_at_target"] = float(np.interp(needed, curve["kl"], curve[
        "rare_agreement"])) if needed and curve["rare_agreement"][0] is not None else None
    return out


def _against_copies(agreement: float, kl: float, curve: dict, **more) -> dict:
    return {**more, "agreement": agreement, "kl": kl,
            "copies_agreement": float(np.interp(kl, curve["kl"], curve["agreement"]))}


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
    fit = summary["fit"]
    lengths = [runs[f]["epochs"] for f in fit["runs"]]
    ends = [summary[f"epochs_for_{n}"] or 0 for n in ("target", "rare_target")]
    xs = np.geomspace(min(lengths), max(ends + lengths), 100)
    bx.plot(xs, fit["c"] * xs ** -fit["alpha"], "k-", lw=0.8,
            label=f"KL = {fit['c']:.3g} x epochs^-{fit['alpha']:.2f}")
    for name, what, style in (("target", "", "-"), ("rare_target", " on the rare classes", ":")):
        if summary[f"copies_kl_at_{name}"]:
            bx.axhline(summary[f"copies_kl_at_{name}"], color="grey", lw=0.8, ls=style,
                       label=f"copies' KL at {summary[name]}{what}")
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
            raise MotivnetError(f"{item}: a run is given as LABEL=PATH (a history JSON or "
                                "a run folder)")
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


def labelled_copies(run_out: Path, csv: Path, target: float, rows: dict, draws: int) -> dict:
    """Noisy copies of the run's teacher on the faces of labelled photos (labels not read),
    the KL at which they reach ``target``, and each measured row (``rows``: name -> its
    ``labelled_agreement`` and ``labelled_kl``, as ``benchmarks.agreement --labelled`` writes
    them) against the copies at its KL."""
    from motivnet_edge.benchmarks.agreement import labelled

    teacher = labelled(run_out, csv)["teacher"]
    curve = noisy_copies(teacher, draws=draws)
    return {"csv": str(csv), "faces": len(teacher), "target": target,
            "copies_kl_at_target": kl_at(target, curve),
            "rows": {name: _against_copies(r["labelled_agreement"], r["labelled_kl"], curve)
                     for name, r in rows.items()}, "copies": curve}


def read_labelled_rows(paths: list[Path]) -> dict:
    """Every row of the agreement files at ``paths`` (``--labelled`` runs), keyed
    ``FILE: ROW``; a file without labelled figures is named."""
    rows = {}
    for path in paths:
        try:
            for name, row in json.loads(Path(path).read_text())["rows"].items():
                rows[f"{Path(path).name}: {name}"] = {
                    k: float(row[k]) for k in ("labelled_agreement", "labelled_kl")}
        except (OSError, ValueError) as exc:
            raise MotivnetError(f"{path}: not a readable agreement file ({exc})") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise MotivnetError(f"{path}: not an agreement file of labelled faces (no field "
                                f"{exc})") from None
    return rows


def _report(summary: dict, half: str, faces: int) -> None:
    print(f"held-out faces ({half}): {faces}")
    print(f"{'run':<16} {'epochs':>6} {'agreement':>9} {'KL':>7} {'copies at its KL':>16}")
    for label, r in summary["runs"].items():
        print(f"{label:<16} {r['epochs']:>6} {r['agreement']:>9.4f} {r['kl']:>7.4f} "
              f"{r['copies_agreement']:>16.4f}")
    fit, pace = summary["fit"], summary["seconds_per_epoch"]
    print(f"KL = {fit['c']:.4g} x epochs^-{fit['alpha']:.3f} over the last epochs of "
          + ", ".join(fit["runs"]))
    for name, what in (("target", "agree"), ("rare_target", "agree on the rare classes")):
        kl, epochs = summary[f"copies_kl_at_{name}"], summary[f"epochs_for_{name}"]
        said = f"noisy copies of the teacher {what} {summary[name]}"
        if kl is None:
            print(f"{said}: never, at any noise measured")
            continue
        print(f"{said} at KL {kl:.4f}" + (
            f", which the fit reaches at {epochs:.0f} epochs: {summary[f'hours_for_{name}']:.1f}"
            f" h at {pace:.0f} s per epoch (the runs' median pace)" if epochs else ""))
    if summary["copies_rare_at_target"] is not None:
        print(f"at KL {summary['copies_kl_at_target']:.4f} the copies agree on the rare classes' "
              f"faces {summary['copies_rare_at_target']:.4f}")


def _report_labelled(result: dict) -> None:
    kl = result["copies_kl_at_target"]
    print(f"labelled faces ({result['csv']}): {result['faces']}; noisy copies agree "
          f"{result['target']} " + (f"at KL {kl:.4f}" if kl else "never, at any noise measured"))
    for name, r in result["rows"].items():
        print(f"  {name}: agreement {r['agreement']:.4f}, KL {r['kl']:.4f}, copies at its KL "
              f"{r['copies_agreement']:.4f}")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=PATH, one per run: its history JSON, or its "
                   "run folder (finished, going or stopped)")
    p.add_argument("--run", type=Path, required=True,
                   help="a distil run's folder whose held-out faces and teacher rows are read")
    p.add_argument("--half", choices=HALVES, default="both")
    p.add_argument("--target", type=float, default=0.92, help="the agreement asked for")
    p.add_argument("--rare-target", type=float, default=0.85,
                   help="the agreement asked for on the teacher's rare classes")
    p.add_argument("--draws", type=int, default=20, help="noise draws per level")
    p.add_argument("--fit", help="LABEL,LABEL...: the runs of one recipe that KL against "
                   "schedule length is fit on (default: every run)")
    p.add_argument("--labelled", type=Path, help="labelled photos' CSV: noisy copies on their "
                   "faces too (the labels are not read)")
    p.add_argument("--labelled-target", type=float, default=0.85)
    p.add_argument("--labelled-rows", type=Path, nargs="*", default=[],
                   help="agreement files (benchmarks.agreement --labelled) whose rows are "
                   "placed against the copies on those faces")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--plot", type=Path, help="write the two panels here (.png)")
    p.add_argument("--title", default="held-out agreement, closeness and schedule length")
    return p.parse_args(argv)


def _checked(args: argparse.Namespace) -> tuple[dict, list[str], dict]:
    """The runs' histories, the labels the fit reads and the labelled rows, every value
    checked before any faces load."""
    for flag in ("target", "rare_target", "labelled_target"):
        value = getattr(args, flag)
        if not 0 < value < 1:
            raise MotivnetError(f"--{flag.replace('_', '-')} {value}: an agreement between 0 "
                                "and 1")
    if args.draws < 1:
        raise MotivnetError(f"--draws {args.draws}: at least 1")
    if args.labelled_rows and not args.labelled:
        raise MotivnetError("--labelled-rows: the rows are placed on --labelled CSV's faces")
    paths = _parse_runs(args.runs)
    fit = args.fit.split(",") if args.fit else list(paths)
    for label in set(fit) - set(paths):
        raise MotivnetError(f"--fit {label}: no run has that label")
    histories = {label: read_history(path) for label, path in paths.items()}
    return histories, fit, read_labelled_rows(args.labelled_rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.agreement_ceiling``: the runs' agreement against
    their KL beside noisy copies of the teacher, and the schedule a target agreement asks."""
    args = _arguments(argv)
    try:
        histories, fit, rows = _checked(args)
        teacher, share = _teacher_rows(args.run, args.half)
        runs = {label: on_half(h, args.half, share) for label, h in histories.items()}
        curve = noisy_copies(teacher, draws=args.draws)
        summary = summarise(runs, curve, (args.target, args.rare_target), fit)
        tagged = labelled_copies(args.run, args.labelled, args.labelled_target, rows,
                                 args.draws) if args.labelled else None
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(summary, args.half, len(teacher))
    if tagged:
        _report_labelled(tagged)
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, {"half": args.half, "faces": len(teacher), **summary,
                               "copies": curve, "labelled": tagged, "histories": runs})
    if args.plot:
        plot(runs, curve, summary, args.plot, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
