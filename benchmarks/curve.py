"""The curve of a distillation run: held-out agreement with the teacher against epochs, for the
running weights and their moving average, on the select half (what decisions read) and the
untouched half, with reference lines (another student's figure on the same halves).

    python -m motivnet_edge.benchmarks.curve --run OUT --plot curve.png [--line NAME=0.87]
    python -m motivnet_edge.benchmarks.curve --run OUT --name "T 8" --plot runs.png \
        --against "T 4=history-25.json" --against "T 1=OTHER_OUT"

With ``--against``, other runs (their folders or history files) are set beside this one epoch
by epoch on the select half (agreement and KL of the weights the rule keeps at each epoch, the
plot showing both the running weights and their average): how two recipes run on the same
schedule and held-out faces are compared before either has finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.targets.errors import MotivnetError

SERIES = (("select_agreement", "running weights, select half", "-"),
          ("ema_select_agreement", "moving average, select half", "-"),
          ("untouched_agreement", "running weights, untouched half", ":"),
          ("ema_untouched_agreement", "moving average, untouched half", ":"))


def history_of(run_out: Path) -> list[dict]:
    """The run's per-epoch figures: work/history.json when it finished, else its checkpoint's
    (a run still going, or stopped); a JSON file of them (``{"history": [...]}``, as a run
    writes and results keep) is read as it is."""
    from motivnet_edge.compress.runfolder import RunFolder

    if run_out.is_file():
        try:
            return json.loads(run_out.read_text())["history"]
        except (ValueError, KeyError, TypeError):
            raise MotivnetError(f"{run_out}: not a history file (a JSON object with a "
                                f"'history' list)") from None
    folder = RunFolder(run_out)
    if folder.history.is_file():
        return json.loads(folder.history.read_text())["history"]
    if folder.checkpoint.is_file():
        import torch

        try:
            return torch.load(folder.checkpoint, map_location="cpu", weights_only=True)["history"]
        except Exception as exc:  # torch names no one error for a file it cannot unpickle
            raise MotivnetError(f"{folder.checkpoint}: not a readable distil checkpoint "
                                f"({type(exc).__name__})") from None
    raise MotivnetError(f"{run_out}: no history.json and no checkpoint: not a distil run")


def table(history: list[dict]) -> str:
    keys = [k for k, _, _ in SERIES if k in history[0]]
    keys += [k for k in ("select_kl", "ema_select_kl", "select_rare_agreement",
                         "ema_select_rare_agreement", "seconds") if k in history[0]]
    lines = ["| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for h in history:
        lines.append(f"| {h['epoch']} | " + " | ".join(f"{h[k]:.4f}" if k != "seconds"
                                                         else f"{h[k]:.0f}" for k in keys) + " |")
    return "\n".join(lines)


def plot(history: list[dict], path: Path, lines: dict[str, float], title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    epochs = [h["epoch"] for h in history]
    for key, label, style in SERIES:
        if key in history[0]:
            ax.plot(epochs, [h[key] for h in history], style, marker="o", ms=3, label=label)
    for name, value in lines.items():
        ax.axhline(value, color="grey", lw=0.8, ls="--")
        ax.annotate(name, (epochs[0], value), fontsize=8, color="grey",
                    xytext=(0, 3), textcoords="offset points")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 agreement with the teacher (held-out)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save(fig, path)


def table_against(runs: dict[str, list[dict]]) -> str:
    """Runs side by side on the select half, epoch by epoch: agreement and KL of the weights
    each run's rule would keep at that epoch."""
    from motivnet_edge.compress.distil.selection import AVERAGE_PREFIX, prefers_average

    def kept(h: dict) -> str:
        averaged = f"{AVERAGE_PREFIX}select_agreement" in h and prefers_average(h)
        return AVERAGE_PREFIX if averaged else ""

    cells = {name: {h["epoch"]: h for h in history} for name, history in runs.items()}
    epochs = sorted({e for by_epoch in cells.values() for e in by_epoch})
    lines = ["| epoch | " + " | ".join(f"{n} agreement | {n} KL" for n in runs) + " |",
             "|---" * (1 + 2 * len(runs)) + "|"]
    for e in epochs:
        row = []
        for by_epoch in cells.values():
            h = by_epoch.get(e)
            row += ([f"{h[kept(h) + 'select_agreement']:.4f}", f"{h[kept(h) + 'select_kl']:.3f}"]
                    if h else ["", ""])
        lines.append(f"| {e} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_against(runs: dict[str, list[dict]], path: Path, title: str) -> None:
    """Runs side by side on the select half, epoch by epoch: top-1 agreement and KL, the
    running weights solid and their average dashed, one colour per run."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, history) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        epochs = [h["epoch"] for h in history]
        for ax, figure in zip(axes, ("select_agreement", "select_kl"), strict=True):
            for prefix, style in (("", "-"), ("ema_", "--")):
                if prefix + figure in history[0]:
                    ax.plot(epochs, [h[prefix + figure] for h in history], style, color=colour,
                            marker="o", ms=3, label=f"{name}{', average' if prefix else ''}")
    axes[0].set_ylabel("top-1 agreement with the teacher (select half)")
    axes[1].set_ylabel("KL divergence from the teacher (select half, nats)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


def _named_runs(items: list[str]) -> dict[str, list[dict]]:
    """``--against NAME=PATH`` items read as NAME -> history."""
    runs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MotivnetError(f"--against {item!r}: not NAME=PATH (a run folder or a "
                                f"history file)")
        runs[name] = history_of(Path(path))
    return runs


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.curve``: a run's per-epoch figures printed as a
    table, and plotted with --plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--plot", type=Path, help="write the curve as a PNG")
    p.add_argument("--line", action="append", default=[], help="NAME=VALUE reference line")
    p.add_argument("--title", default="held-out agreement against epochs")
    p.add_argument("--against", action="append", default=[], metavar="NAME=PATH",
                   help="another run (its folder, or a history JSON file) drawn beside this "
                        "one, epoch by epoch: the plot shows every run's select-half agreement "
                        "and KL; this run is named by --name")
    p.add_argument("--name", default="this run", help="this run's name beside --against")
    args = p.parse_args(argv)
    try:
        history = history_of(args.run)
        others = _named_runs(args.against)
        lines = {}
        for item in args.line:
            name, _, value = item.rpartition("=")
            try:
                lines[name] = float(value)
            except ValueError:
                raise MotivnetError(f"--line {item!r}: not NAME=NUMBER") from None
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table_against({args.name: history, **others}) if others else table(history))
    if args.plot and others:
        plot_against({args.name: history, **others}, args.plot, args.title)
        print(f"curves: {args.plot}")
    elif args.plot:
        plot(history, args.plot, lines, args.title)
        print(f"curve: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
