"""The validation gate: every artifact, run in its own engine on held-out crops, compared with the
FP32 student (the model it came from), the teacher and the labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motivnet_edge.targets.engine import EngineOptions, load_engine, softmax
from motivnet_edge.targets.metadata import artifact_bytes
from motivnet_edge.targets.preprocess import FaceImage, make_inputs


@dataclass(frozen=True)
class Gate:
    """An INT8 artifact passes when its top-1 agrees with the FP32 student on at least
    ``agreement`` of the held-out crops and it changes no decision the FP32 student was sure
    of: no flip where the student's top-2 logit margin exceeds ``max_flip_margin`` (1.0: its top
    class was e times as likely as the runner-up). The second rule catches an artifact that
    breaks a few inputs badly (seen: an NNCF IR flipping 4 of 513 crops held with margin 5)
    while the first alone would let it through."""

    agreement: float = 0.99
    max_flip_margin: float = 1.0

    def passes(self, scores: dict) -> bool:
        return (scores["agreement_with_float"] >= self.agreement
                and scores["flip_max_fp32_margin"] <= self.max_flip_margin)

    def rank(self, scores: dict) -> tuple:
        """Sort key: passing first, then higher agreement, then smaller flip margins."""
        return (self.passes(scores), scores["agreement_with_float"],
                -scores["flip_max_fp32_margin"])

    def to_dict(self) -> dict:
        return {"agreement_with_float": self.agreement,
                "max_flip_fp32_margin": self.max_flip_margin}


DEFAULT_GATE = Gate()


def run_artifact(path: Path, crops: Sequence[FaceImage], batch: int = 32,
                 check: bool = True) -> tuple[np.ndarray, dict]:
    """Logits of ``path`` in its own engine for ``crops``, built with the artifact's own crop
    spec read from its metadata; also the engine's settings and metadata."""
    with load_engine(path, options=EngineOptions(threads=None), check=check) as engine:
        outs = []
        for i in range(0, len(crops), batch):
            x = make_inputs(crops[i:i + batch], engine.crop)
            outs.append(engine.run(x))
        return np.concatenate(outs), {"engine": engine.name, "settings": engine.settings,
                                      "metadata": engine.metadata}


def compare(logits: np.ndarray, float_logits: np.ndarray, teacher_logits: np.ndarray | None,
            labels: np.ndarray | None) -> dict:
    pred = logits.argmax(1)
    p, q = softmax(logits), softmax(float_logits)
    cos = np.sum(p * q, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)
    flips = pred != float_logits.argmax(1)
    top2 = np.sort(float_logits, 1)[:, -2:] if len(pred) else np.zeros((0, 2))
    margin = top2[:, 1] - top2[:, 0] if top2.shape[1] == 2 else np.zeros(len(pred))
    out = {"n": int(len(pred)),
           "agreement_with_float": float(np.mean(~flips)),
           "cosine_with_float": float(np.mean(cos)),
           # how close to a tie the FP32 student was where the two disagree: small margins
           # mean only near-ties flipped
           "flips": int(flips.sum()),
           "flip_max_fp32_margin": round(float(margin[flips].max()), 4) if flips.any() else 0.0}
    if teacher_logits is not None:
        out["agreement_with_teacher"] = float(np.mean(pred == teacher_logits.argmax(1)))
    if labels is not None and len(labels) and labels.min() >= 0:
        out["accuracy"] = float(np.mean(pred == labels))
    return out


def evaluate_artifact(path: Path, crops: Sequence[FaceImage], float_logits: np.ndarray,
                      teacher_logits: np.ndarray | None, labels: np.ndarray | None,
                      check: bool = True) -> dict:
    logits, info = run_artifact(path, crops, check=check)
    meta = info["metadata"]
    return {"file": path.name, "format": meta["format"], "precision": meta["precision"],
            "what_it_is": meta.get("precision_detail", ""), "recipe": meta.get("recipe", {}),
            "bytes": artifact_bytes(path), "engine": info["engine"],
            "engine_settings": info["settings"],
            **compare(logits, float_logits, teacher_logits, labels)}
