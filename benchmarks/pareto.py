"""pareto.png: every row of a ``bench`` run as accuracy against latency, the Pareto front drawn,
the full model marked.

Every row is shown: the axes are set to cover every point with a margin (never left to
autoscaling), and each label is placed where its drawn extent overlaps no other label and stays
inside the axes, trying offsets above and below, right and left of its point; a label with no
free place is listed in the legend instead, beside its point's marker.
"""

from __future__ import annotations

import math
from pathlib import Path

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.benchmarks.host import describe

# (dx, dy) in points from the point, in order of preference: close first, then further up or
# down, on the right, then on the left
OFFSETS = [(dx, dy) for dy in (3, -10, 11, -18, 19, -26, 27, -34, 35, -42)
           for dx in (5, -5)]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both: lower latency and higher accuracy."""
    front, best = [], float("-inf")
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _limits(values: list[float], log: bool, pad: float) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = max(hi - lo, 0.2 if log else 0.02)
    lo, hi = lo - pad * span, hi + pad * span
    return (10 ** lo, 10 ** hi) if log else (lo, hi)


def place_labels(ax, labels: list[tuple[str, float, float]]) -> list[int]:
    """Annotate each (text, x, y) where its extent is free and inside the axes; the indices of
    the labels that found no such place (not drawn)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    taken = [t.get_window_extent(renderer) for t in ax.texts]
    left_out = []
    for i, (text, x, y) in enumerate(labels):
        for dx, dy in OFFSETS:
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                               fontsize=6, ha="left" if dx > 0 else "right", va="bottom")
            box = note.get_window_extent(renderer)
            fits = (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0
                    and box.y1 <= inside.y1)
            if fits and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            note.remove()
        else:
            left_out.append(i)
    return left_out


def draw(results: dict):
    """The figure of a bench run's results (matplotlib, Agg)."""
    import matplotlib.ticker

    plt = pyplot()
    rows = [r for r in results["rows"] if r.get("p50_ms")]
    metric = "top1" if any(r.get("top1") is not None for r in rows) else "agreement_full"
    fig, ax = plt.subplots(figsize=(9, 5.5))
    points, labels, markers = [], [], []
    for r in rows:
        y = r.get(metric)
        if y is None:  # speed only: its latency, no accuracy
            ax.axvline(r["p50_ms"], ls="--", c="grey", lw=1)
            ax.annotate(f"{r['name']} (speed only)", (r["p50_ms"], 0.02), rotation=90,
                        xycoords=("data", "axes fraction"), fontsize=7, ha="right")
            continue
        full = r["kind"] in ("full-model", "teacher")
        markers.append(ax.scatter(r["p50_ms"], y, marker="*" if full else "o",
                                  s=160 if full else 30, c="crimson" if full else None,
                                  zorder=3))
        labels.append((f"{r['name'].replace('student-', '')} {r['engine'].split()[0]}/"
                       f"{r['device']}", r["p50_ms"], y))
        points.append((r["p50_ms"], y))
    ax.set_xscale("log")
    every_x = [r["p50_ms"] for r in rows]
    if every_x:
        ax.set_xlim(*_limits(every_x, log=True, pad=0.12))
    if points:
        ax.set_ylim(*_limits([y for _, y in points], log=False, pad=0.15))
    front = pareto_front(points)
    handles = []
    if front:
        handles += ax.step(*zip(*front, strict=True), where="post", c="k", lw=1, alpha=0.6,
                           label="Pareto front")
    plain = matplotlib.ticker.FormatStrFormatter("%g")  # 0.6, 2, 3: not 6x10^-1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("per-face latency, batch 1, p50 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy" if metric == "top1" else "top-1 agreement with the full model")
    ax.set_title(f"{describe(results['host'])}\n{results['faces']} faces: "
                 f"{results['faces_source']}", fontsize=8)
    for i in place_labels(ax, labels):  # no free place: in the legend, beside its marker
        markers[i].set_label(labels[i][0])
        handles.append(markers[i])
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  borderaxespad=0)
    return fig


def pareto(results: dict, path: Path) -> None:
    """The figure of a bench run's results, written to ``path``."""
    save(draw(results), path, bbox_inches="tight")
