"""Decoupled knowledge distillation (Zhao et al., CVPR 2022, "Decoupled Knowledge
Distillation"), the target class being the teacher's top-1 (no labels needed).

The KL divergence from the teacher's softened probabilities to the student's splits, face by
face, into a binary part (the top class against the rest together, TCKD) and a part among the
other classes renormalised (NCKD): KL = TCKD + (1 - p_top) x NCKD, ``p_top`` the teacher's
probability of its top class. Plain KD thus gives the other classes' ranking little weight
where the teacher is sure; with ``--dkd BETA`` that weight is BETA on every face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# added to the top class's logit to leave it out of a softmax over the others
_LEAVE_OUT = -1e4


def decoupled_parts(out: torch.Tensor, teacher: torch.Tensor, temperature: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per face: TCKD, NCKD and the teacher's softened probability of its top class."""
    top = F.one_hot(teacher.argmax(1), teacher.shape[1]).bool()
    log_s, log_t = F.log_softmax(out / temperature, 1), F.log_softmax(teacher / temperature, 1)

    def binary(logp: torch.Tensor) -> torch.Tensor:  # log [p_top, p_rest]
        rest = torch.logsumexp(logp.masked_fill(top, float("-inf")), 1)
        return torch.stack([logp[top], rest], 1)

    bin_s, bin_t = binary(log_s), binary(log_t)
    tckd = (bin_t.exp() * (bin_t - bin_s)).sum(1)
    others_s = F.log_softmax(out / temperature + _LEAVE_OUT * top, 1)
    others_t = F.log_softmax(teacher / temperature + _LEAVE_OUT * top, 1)
    nckd = (others_t.exp() * (others_t - others_s)).masked_fill(top, 0).sum(1)
    return tckd, nckd, bin_t[:, 0].exp()


def decoupled_kd(out: torch.Tensor, teacher: torch.Tensor, temperature: float,
                 beta: float) -> torch.Tensor:
    """Mean over faces of TCKD + ``beta`` x NCKD, times T^2 (as plain KD is)."""
    tckd, nckd, _ = decoupled_parts(out, teacher, temperature)
    return (tckd + beta * nckd).mean() * temperature ** 2
