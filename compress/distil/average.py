"""An exponential moving average of a student's weights (its parameters and BatchNorm
statistics), updated after every optimizer step.

Long distillation runs end on a noisy iterate; the average over the last few hundred steps
agrees with the teacher more often on held-out faces (measured in
benchmarks/results/patient-student.md). The decay warms up as (1 + n) / (10 + n) so that the
first steps do not leave the ImageNet start in the average for thousands of steps.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """``WeightAverage(model, 0.999)``; ``update()`` after each step; ``model`` is the average."""

    def __init__(self, source: torch.nn.Module, decay: float) -> None:
        self.source, self.decay, self.updates = source, decay, 0
        self.model = copy.deepcopy(source).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        mine, theirs = self.model.state_dict(), self.source.state_dict()
        for name, value in mine.items():
            new = theirs[name].detach()
            if value.dtype.is_floating_point:
                value.mul_(d).add_(new, alpha=1 - d)
            else:
                value.copy_(new)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
