"""Logit standardisation for distillation (Sun et al., CVPR 2024, "Logit Standardization in
Knowledge Distillation").

With ``--standardise`` the KL term compares each face's logits after subtracting their mean and
dividing by their standard deviation, student and teacher alike, before the temperature: the
student learns how the teacher ranks and spaces the classes, not the size of its logits. The
size is then free, so after training one number is fitted that scales the student's class
logits to match the teacher's probabilities best (least mean KL on the training faces, which the
selection rule never reads) and folded into its class head: the files it exports give
probabilities on the teacher's scale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from motivnet_edge.compress.inference import predict
from motivnet_edge.compress.models.students import class_head
from motivnet_edge.targets.classifier_spec import OutputLayout
from motivnet_edge.targets.engine import kl_divergence
from motivnet_edge.targets.preprocess import CropSpec, FaceImage

log = logging.getLogger(__name__)

# the most training faces the scale is fitted on (evenly spaced): one number needs few
MAX_FACES = 4096


def standardised(logits: torch.Tensor) -> torch.Tensor:
    """Each row less its mean, over its standard deviation."""
    centred = logits - logits.mean(1, keepdim=True)
    return centred / (centred.std(1, keepdim=True) + 1e-7)


def best_scale(student: np.ndarray, teacher: np.ndarray) -> float:
    """The factor on ``student``'s logits whose softmax is nearest the teacher's (least mean KL):
    a log-spaced grid from 1/64 to 64, then three finer ones, each around the last's best point."""
    student, teacher = student.astype(np.float64), teacher.astype(np.float64)
    grid = np.geomspace(1 / 64, 64, 97)
    for _ in range(4):
        i = int(np.argmin([kl_divergence(teacher, s * student).mean() for s in grid]))
        best, grid = grid[i], np.geomspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 41)
    return float(best)


def fold_scale(model: torch.nn.Module, crops: Sequence[FaceImage], teacher: np.ndarray,
               spec: CropSpec, layout: OutputLayout | None, device: str = "cpu") -> float:
    """Fit the scale of the student's class logits to the teacher's rows for ``crops`` and fold
    it into the class head; returns it."""
    pick = np.linspace(0, len(crops) - 1, min(len(crops), MAX_FACES)).round().astype(int)
    rows = predict(model, [crops[i] for i in pick], spec, device)
    lay = layout or OutputLayout.of(rows.shape[1])
    scale = best_scale(lay.class_outputs(rows), lay.class_outputs(teacher[pick]))
    head = class_head(model)
    with torch.no_grad():
        head.weight.mul_(scale)
        if head.bias is not None:
            head.bias.mul_(scale)
    log.info("standardised logits: the class head scaled by %.4g (least KL from the teacher on "
             "%d training faces)", scale, len(pick))
    return scale
