"""Evaluation on labelled real faces: the teacher, the FP32 student and every artifact in its own
engine, on the same faces found by the device's detector and cut by the one crop function.

Accuracy counts every face found, including those whose label no model can give (faces-dev's
contempt: MotivNet's 7 classes have none); those classes are listed, never dropped. Macro
recall averages the recall of the models' classes that occur in the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.data import collect
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.labels import AFFECTNET8, canonical
from motivnet_edge.targets.preprocess import FaceImage


def scores(pred: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
           model_classes: Sequence[str], teacher_pred: np.ndarray | None = None) -> dict:
    """``pred``: indices into ``model_classes``; ``labels``: indices into ``label_names``."""
    names = [canonical(c) for c in model_classes]
    as_label = np.array([label_names.index(c) for c in names])
    hit = as_label[pred] == labels
    recall = {c: float(hit[labels == k].mean()) for k, c in enumerate(label_names)
              if (labels == k).any()}
    confusion = np.zeros((len(label_names), len(names)), int)
    np.add.at(confusion, (labels, pred), 1)
    out = {"accuracy": float(hit.mean()),
           "macro_recall": float(np.mean([r for c, r in recall.items() if c in names])),
           "recall": recall, "confusion": confusion.tolist()}
    if teacher_pred is not None:
        out["agreement_with_teacher"] = float(np.mean(pred == teacher_pred))
    return out


def labelled_report(path: Path, classes: Sequence[str],
                    models: dict[str, Callable[[list[FaceImage]], np.ndarray]],
                    teacher: str | None = "teacher", detector: FaceDetector | None = None,
                    progress: bool = True) -> dict:
    """Each model (name -> faces -> logits in ``classes`` order) scored on the labelled faces
    of ``path``; agreement with the model named ``teacher``."""
    faces = collect(labelled=path, detector=detector, classes=AFFECTNET8, progress=progress)
    labels = np.asarray(faces.labels)
    preds = {name: np.asarray(fn(faces.crops)).argmax(1) for name, fn in models.items()}
    teacher_pred = preds.get(teacher)
    found_images = len(faces) + sum(faces.skipped.get(k, 0) for k in ("no face", "unreadable"))
    label_names = list(AFFECTNET8)
    known = [canonical(x) for x in classes]
    counts = {c: int((labels == k).sum()) for k, c in enumerate(label_names)}
    lacking = {c: n for c, n in counts.items() if c not in known and n}
    return {"source": str(path), "images": found_images, "faces": len(faces),
            "skipped": dict(faces.skipped), "classes": label_names,
            "model_classes": list(classes), "classes_without_model": lacking,
            "models": {name: scores(p, labels, label_names, classes,
                                    None if name == teacher else teacher_pred)
                       for name, p in preds.items()}}
