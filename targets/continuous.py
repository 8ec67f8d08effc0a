"""How close one model's continuous outputs (valence, arousal) are to another's: mean absolute
error, root mean square error and Lin's concordance correlation coefficient, the figure CAGE and
the AffectNet literature report (1: identical; it falls with any difference of correlation,
mean or scale)."""

from __future__ import annotations

import numpy as np


def ccc(pred: np.ndarray, ref: np.ndarray) -> float:
    """Lin's concordance correlation: 2 cov / (var_p + var_r + (mean_p - mean_r)^2)."""
    p, r = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    if len(p) < 2:
        return float("nan")
    cov = np.mean((p - p.mean()) * (r - r.mean()))
    denom = p.var() + r.var() + (p.mean() - r.mean()) ** 2
    return float(2 * cov / denom) if denom > 0 else 1.0


def agreement(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per output both models give: ``mae``, ``rmse`` and ``ccc`` of ``pred`` against ``ref``."""
    out = {}
    for name in (n for n in ref if n in pred):
        diff = np.asarray(pred[name], np.float64) - np.asarray(ref[name], np.float64)
        out[name] = {"mae": round(float(np.mean(np.abs(diff))), 5) if len(diff) else 0.0,
                     "rmse": round(float(np.sqrt(np.mean(diff ** 2))), 5) if len(diff) else 0.0,
                     "ccc": round(ccc(pred[name], ref[name]), 5)}
    return out
