"""The curve of a distillation run: held-out agreement with the teacher against epochs, for the
running weights and their moving average, on the select half (what decisions read) and the
untouched half, with reference lines (another student's figure on the same halves).

    python -m motivnet_edge.benchmarks.curve --run OUT --plot curve.png [--line NAME=0.87]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError

SERIES = (("select_agreement", "running weights, select half", "-"),
          ("ema_select_agreement", "moving average, select half", "-"),
          ("untouched_agreement", "running weights, untouched half", ":"),
          ("ema_untouched_agreement", "moving average, untouched half", ":"))


def history_of(run_out: Path) -> list[dict]:
    """The run's per-epoch figures: work/history.json when it finished, else its checkpoint's
    (a run still going, or stopped)."""
    from motivnet_edge.compress.runfolder import RunFolder

    folder = RunFolder(run_out)
    if folder.history.is_file():
        return json.loads(folder.history.read_text())["history"]
    if folder.checkpoint.is_file():
        import torch

        return torch.load(folder.checkpoint, map_location="cpu", weights_only=True)["history"]
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from motivnet_edge.targets.files import atomic_path

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
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.curve``: a run's per-epoch figures printed as a
    table, and plotted with --plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--plot", type=Path, help="write the curve as a PNG")
    p.add_argument("--line", action="append", default=[], help="NAME=VALUE reference line")
    p.add_argument("--title", default="held-out agreement against epochs")
    args = p.parse_args(argv)
    try:
        history = history_of(args.run)
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
    print(table(history))
    if args.plot:
        plot(history, args.plot, lines, args.title)
        print(f"curve: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
