"""Choosing a student without labels: the selection rule and the figures it reads.

The held-out faces (a share of the distillation data by content hash, never trained on) are
cut in two by another part of the hash:

- ``select``: every decision reads these and nothing else: which epoch, the running weights or
  their average, which recipe (preset, augmentation, length) and which student size;
- ``untouched``: reported beside them and never read by a decision, so a figure on them is
  still an honest estimate after many choices were made on ``select``.

The figure is the student's agreement with its teacher: top-1 agreement, ties broken by the
mean KL divergence of the student's class probabilities from the teacher's (lower is better).
Labelled photos (faces-dev) are reported and never decide. Agreement is also given on the faces
the teacher puts in its rare classes (those it names on fewer than half the uniform share of
the held-out faces: with the unlabelled photos' skew, sadness, fear, anger and disgust), where a
student loses most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from motivnet_edge.targets.classifier_spec import OutputLayout
from motivnet_edge.targets.continuous import agreement
from motivnet_edge.targets.engine import kl_divergence

HALVES = ("select", "untouched")
# the weight average's figures in a run's history carry this prefix; the running weights' none
AVERAGE_PREFIX = "ema_"


def held_out_halves(hashes: Sequence[str]) -> np.ndarray:
    """Per held-out face: True when it is in the ``select`` half (by hash digits 8-16, which
    the train/held-out split does not read)."""
    return np.array([int(h[8:16], 16) % 2 == 0 for h in hashes], bool)


def kl_from_teacher(student: np.ndarray, teacher: np.ndarray) -> float:
    """Mean KL(teacher || student) of the class probabilities (temperature 1), in nats."""
    return float(np.mean(kl_divergence(teacher.astype(np.float64), student.astype(np.float64))))


def rare_classes(teacher: np.ndarray) -> np.ndarray:
    """The classes the teacher names (top-1) on fewer than half the uniform share of faces."""
    n = teacher.shape[1]
    share = np.bincount(teacher.argmax(1), minlength=n) / max(1, len(teacher))
    return np.flatnonzero(share < 0.5 / n)


def agreement_figures(student: np.ndarray, teacher: np.ndarray) -> dict:
    """Top-1 agreement, KL and agreement on the teacher's rare classes (class logits only)."""
    pred, want = student.argmax(1), teacher.argmax(1)
    rare = np.isin(want, rare_classes(teacher))
    return {"agreement": float(np.mean(pred == want)),
            "kl": kl_from_teacher(student, teacher),
            "rare_agreement": float(np.mean(pred[rare] == want[rare])) if rare.any()
            else float("nan"), "rare_n": int(rare.sum())}


def halves_figures(student: np.ndarray, teacher: np.ndarray, select: np.ndarray,
                   prefix: str = "") -> dict:
    """:func:`agreement_figures` on each half, keys ``{prefix}select_agreement`` and so on."""
    out = {}
    for half, mask in zip(HALVES, (select, ~select), strict=True):
        if mask.any():
            for key, value in agreement_figures(student[mask], teacher[mask]).items():
                out[f"{prefix}{half}_{key}"] = value
    return out


def prefers_average(entry: dict) -> bool:
    """Whether the rule keeps the weight average over the running weights on one epoch's
    figures: the average when it is at least as good by :func:`selection_key`, or when there
    are no held-out halves to read."""
    return "select_agreement" not in entry or \
        selection_key(entry, AVERAGE_PREFIX) >= selection_key(entry)


def kept_weights(entry: dict) -> str:
    """The weights a run kept, ``average`` or ``running``, as its last history entry records
    them (``weights``); for a run still going or stopped (no record yet), the weights the rule
    would keep were it to end on that epoch."""
    if "weights" in entry:
        return "average" if entry["weights"] == "average" else "running"
    has_average = f"{AVERAGE_PREFIX}select_agreement" in entry
    return "average" if has_average and prefers_average(entry) else "running"


def kept_prefix(entry: dict) -> str:
    """The key prefix of the figures of the weights a run kept (:func:`kept_weights`)."""
    return AVERAGE_PREFIX if kept_weights(entry) == "average" else ""


def selection_key(figures: dict, prefix: str = "") -> tuple[float, float]:
    """Sort key of the rule (larger is better): select-half agreement, then lower KL."""
    return (figures[f"{prefix}select_agreement"], -figures[f"{prefix}select_kl"])


def macro_f1(pred: np.ndarray, labels: np.ndarray, n: int) -> float:
    k = np.arange(n)[:, None]  # one row per class, over the classes predicted or labelled
    tp, fp = ((pred == k) & (labels == k)).sum(1), ((pred == k) & (labels != k)).sum(1)
    seen = 2 * tp + fp + ((pred != k) & (labels == k)).sum(1)  # F1 = 2 tp / seen
    return float(np.mean(2 * tp[seen > 0] / seen[seen > 0])) if seen.any() else 0.0


def evaluate(rows: np.ndarray, teacher: np.ndarray | None, labels: np.ndarray,
             layout: OutputLayout | None = None) -> dict:
    """Agreement with the teacher, accuracy and macro F1 on labels; with a ``layout`` naming
    continuous outputs, also their MAE and CCC against the teacher's."""
    layout = layout or OutputLayout.of(rows.shape[1])
    logits = layout.class_outputs(rows)
    pred = logits.argmax(1)
    out: dict = {"n": int(len(pred))}
    if teacher is not None:
        out["agreement"] = float(np.mean(pred == layout.class_outputs(teacher).argmax(1)))
        for name, s in agreement(layout.values(rows), layout.values(teacher)).items():
            out[f"{name}_mae"], out[f"{name}_ccc"] = s["mae"], s["ccc"]
    if len(labels) and labels.min() >= 0:
        out["accuracy"] = float(np.mean(pred == labels))
        out["macro_f1"] = macro_f1(pred, labels, logits.shape[1])
    return out
