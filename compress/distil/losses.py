"""The distillation loss: KL divergence to the teacher's softened outputs (scaled by T^2), plus
cross-entropy where labels exist and on the teacher's top-1 class, a concordance term on
continuous outputs (valence, arousal) and a hint term on the teacher's features; the training
loop (:mod:`.train`) and QAT call it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motivnet_edge.compress.distil.decoupled import decoupled_kd
from motivnet_edge.compress.distil.hints import hint_loss
from motivnet_edge.compress.distil.standardise import standardised


def concordance_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error plus 1 - CCC per column, averaged: the squared error fits each value,
    the concordance term the spread and correlation over the batch (what CAGE trains with)."""
    mse = F.mse_loss(pred, target)
    pm, tm = pred.mean(0), target.mean(0)
    cov = ((pred - pm) * (target - tm)).mean(0)
    ccc = 2 * cov / (pred.var(0, unbiased=False) + target.var(0, unbiased=False)
                     + (pm - tm) ** 2 + 1e-8)
    return mse + (1 - ccc).mean()


def distillation_loss(out: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor,
                      temperature: float, alpha: float, values: int = 0,
                      hint: tuple[float, int] | None = None, standard: bool = False,
                      top1: float = 0.0, dkd: float = 0.0) -> torch.Tensor:
    """KD on the class logits plus ``alpha`` x cross-entropy where labels exist and ``top1`` x
    cross-entropy on the teacher's top-1 class of every row; rows that end in ``values``
    continuous outputs add :func:`concordance_loss` on those; ``hint`` (weight, width of a
    plain row): weight x :func:`~.hints.hint_loss` on the columns past it; ``standard``: the KD
    term on :func:`~.standardise.standardised` logits; ``dkd`` > 0: the KD term decoupled, its
    part among the other classes weighted by it (:func:`~.decoupled.decoupled_kd`)."""
    hinted = regress = 0
    if hint is not None and teacher is not None and out.shape[1] > hint[1]:
        weight, width = hint
        hinted = weight * hint_loss(out[:, width:], teacher[:, width:])
        out, teacher = out[:, :width], teacher[:, :width]
    if values:
        n = out.shape[1] - values
        if teacher is not None:
            regress = concordance_loss(out[:, n:], teacher[:, n:])
            teacher = teacher[:, :n]
        out = out[:, :n]
    return _class_loss(out, teacher, labels, temperature, alpha, standard, top1, dkd) \
        + regress + hinted


def _class_loss(out: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor, t: float,
                alpha: float, standard: bool, top1: float, dkd: float) -> torch.Tensor:
    """:func:`distillation_loss` on the class logits alone."""
    has_label = labels >= 0
    ce = (F.cross_entropy(out[has_label], labels[has_label], label_smoothing=0.05)
          if has_label.any() else out.sum() * 0)
    if teacher is None:
        return ce
    hard = F.cross_entropy(out, teacher.argmax(1), label_smoothing=0.05) if top1 else 0
    if standard:
        out, teacher = standardised(out), standardised(teacher)
    kd = decoupled_kd(out, teacher, t, dkd) if dkd else F.kl_div(
        F.log_softmax(out / t, 1), F.log_softmax(teacher / t, 1), log_target=True,
        reduction="batchmean") * t * t
    return kd + alpha * ce + top1 * hard
