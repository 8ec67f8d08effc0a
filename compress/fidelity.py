"""The validation gate: every artifact, run in its own engine on held-out crops, compared with its
float source (the FP32 student, or the quantization-aware fine-tuned model it was exported
from), the teacher and the labels. Its thresholds: :class:`motivnet_edge.compress.settings.Gate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.settings import Gate
from motivnet_edge.targets.classifier_spec import OutputLayout
from motivnet_edge.targets.continuous import agreement
from motivnet_edge.targets.engine import EngineOptions, kl_divergence, load_engine, softmax
from motivnet_edge.targets.metadata import artifact_bytes, read_metadata
from motivnet_edge.targets.preprocess import FaceImage, make_inputs

DEFAULT_GATE = Gate()


def run_artifact(path: Path, crops: Sequence[FaceImage], batch: int = 32,
                 check: bool = True) -> tuple[np.ndarray, dict]:
    """Output rows of ``path`` in its own engine for ``crops`` (class logits, then the
    continuous outputs its metadata names), built with the artifact's own crop spec read from
    its metadata; also the engine's settings and metadata."""
    with load_engine(path, options=EngineOptions(threads=None), check=check) as engine:
        outs = []
        for i in range(0, len(crops), batch):
            x = make_inputs(crops[i:i + batch], engine.crop)
            outs.append(engine.run_raw(x))
        return np.concatenate(outs), {"engine": engine.name, "settings": engine.settings,
                                      "metadata": engine.metadata}


# the float source's top-2 logit margins the flips are counted in (the last bin is open)
MARGIN_BINS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def compare(logits: np.ndarray, float_logits: np.ndarray, teacher_logits: np.ndarray | None,
            labels: np.ndarray | None, layout: OutputLayout | None = None,
            tie_margin: float = DEFAULT_GATE.tie_margin) -> dict:
    """An artifact's output rows against its float source's (and the teacher's): top-1
    agreement, flips and how sure the source was of them, the INT8 noise on the source's
    top-2 margin, agreement on the faces the source decided (:func:`decided`), the mean KL
    divergence of the artifact's class probabilities from the source's; with a ``layout``
    naming continuous outputs after the class logits, their MAE, RMSE and CCC against the float
    source's (``values``)."""
    layout = layout or OutputLayout.of(logits.shape[1])
    out = _compare_classes(*(None if r is None else layout.class_outputs(r)
                             for r in (logits, float_logits, teacher_logits)), labels)
    out.update(decided(layout.class_outputs(logits), layout.class_outputs(float_logits),
                       tie_margin))
    if layout.continuous:
        out["values"] = agreement(layout.values(logits), layout.values(float_logits))
    return out


def _compare_classes(logits: np.ndarray, float_logits: np.ndarray,
                     teacher_logits: np.ndarray | None, labels: np.ndarray | None) -> dict:
    pred = logits.argmax(1)
    p, q = softmax(logits), softmax(float_logits)
    cos = np.sum(p * q, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)
    flips = pred != float_logits.argmax(1)
    top2 = np.sort(float_logits, 1)[:, -2:] if len(pred) else np.zeros((0, 2))
    margin = top2[:, 1] - top2[:, 0] if top2.shape[1] == 2 else np.zeros(len(pred))
    out = {"n": int(len(pred)),
           "agreement_with_float": float(np.mean(~flips)),
           "cosine_with_float": float(np.mean(cos)),
           # how close to a tie the float source was where the two disagree: small margins
           # mean only near-ties flipped
           "flips": int(flips.sum()),
           "flip_max_float_margin": round(float(margin[flips].max()), 4) if flips.any() else 0.0}
    if teacher_logits is not None:
        out["agreement_with_teacher"] = float(np.mean(pred == teacher_logits.argmax(1)))
    if labels is not None and len(labels) and labels.min() >= 0:
        out["accuracy"] = float(np.mean(pred == labels))
    return out


def decided(logits: np.ndarray, float_logits: np.ndarray, tie_margin: float) -> dict:
    """What INT8 does to the decisions its float source made, apart from its indecision.

    ``int8_margin_noise``: the 99th percentile, over the faces, of how far the artifact moves
    the float source's top-2 margin (its top class's logit less its runner-up's). A face whose
    float margin is below that noise is one rounding can tip either way: the source did not
    decide it. ``decided``: agreement on the faces whose float margin is at least the noise,
    the noise counted up to ``tie_margin`` at most (so that an artifact that moves every margin
    far cannot call every face undecided). ``kl_from_float``: mean KL(source || artifact) of the
    class probabilities, which sees damage on every face, tie or not. ``flips_by_margin``: faces
    and flips per bin of float margin (:data:`MARGIN_BINS`)."""
    n = len(logits)
    if not n:
        return {}
    rows = np.arange(n)
    top = float_logits.argmax(1)  # as the flips count it: the first of equal logits
    rest = float_logits.astype(np.float64).copy()
    rest[rows, top] = -np.inf
    second = rest.argmax(1)
    margin = float_logits[rows, top] - float_logits[rows, second]
    moved = logits[rows, top] - logits[rows, second] - margin
    noise = float(np.percentile(np.abs(moved), 99))
    threshold = min(noise, tie_margin)
    sure = margin >= threshold
    agree = logits.argmax(1) == top
    bins = np.digitize(margin, MARGIN_BINS[1:])
    return {"int8_margin_noise": round(noise, 4),
            "decided": {"margin": round(threshold, 4), "n": int(sure.sum()),
                        "agreement": float(agree[sure].mean()) if sure.any() else 1.0},
            "kl_from_float": max(0.0, float(np.mean(kl_divergence(float_logits, logits)))),
            "flips_by_margin": [{"from": lo, "faces": int((bins == k).sum()),
                                 "flips": int((~agree & (bins == k)).sum())}
                                for k, lo in enumerate(MARGIN_BINS)]}


def evaluate_artifact(path: Path, crops: Sequence[FaceImage], float_logits: np.ndarray,
                      teacher_logits: np.ndarray | None, labels: np.ndarray | None,
                      check: bool = True, layout: OutputLayout | None = None,
                      gate: Gate = DEFAULT_GATE, rows: np.ndarray | None = None) -> dict:
    """An artifact's gate figures on ``crops``: run in its own engine, or, given ``rows``, the
    rows a simulator gave for it at build time (RKNN)."""
    if rows is None:
        logits, info = run_artifact(path, crops, check=check)
    else:
        meta = read_metadata(path)
        logits, info = rows, {"engine": "simulator", "metadata": meta,
                              "settings": {"simulated": True,
                                           "platform": meta.get("recipe", {}).get("platform")}}
    meta = info["metadata"]
    return {"file": path.name, "format": meta["format"], "precision": meta["precision"],
            "what_it_is": meta.get("precision_detail", ""), "recipe": meta.get("recipe", {}),
            "bytes": artifact_bytes(path), "engine": info["engine"],
            "engine_settings": info["settings"],
            **compare(logits, float_logits, teacher_logits, labels, layout, gate.tie_margin)}
