"""What an INT8 step is: a :class:`Recipe` (one way to make an INT8 artifact) applied to a
:class:`Calibration` (the FP32 artifact, the student and calibration inputs in the format's
layout). Each format's recipes, in the order they are tried, are its entry in
:data:`motivnet_edge.compress.int8.formats.OPS`.

The first recipe is the fast one; the later ones are safer (another calibration method,
sensitive layers kept in float). The last recipe of every format is :data:`WEIGHTS_ONLY`:
int8 per-channel weights dequantised before each layer, activations float. It is what INT8 can
always deliver when full-integer inference flips too many decisions (a student whose decisions
on the deployment domain are near-ties): a file as small as full INT8, float arithmetic, and
the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Recipe:
    """One way to make an INT8 artifact.

    keep_float: layers left in float: ``first``/``last`` weighted layer, or every ``linear``.
    calibrate: ONNX Runtime's calibration method. preset, ranges, fast_bias_correction: NNCF's.
    source: the format whose gated INT8 artifact is converted instead of calibrating again.
    weights_only: int8 weights dequantised before each layer, activations float.
    """

    name: str
    keep_float: tuple[str, ...] = ()
    calibrate: str = "MinMax"
    preset: str = "PERFORMANCE"
    ranges: str | None = None
    fast_bias_correction: bool = True
    source: str | None = None
    weights_only: bool = False

    def to_dict(self) -> dict:
        """The recipe's name and what it sets (defaults left out)."""
        defaults = Recipe(self.name)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k == "name" or v != getattr(defaults, k)}

    def kept_float(self, weighted: list[str], heads: int = 1) -> list[str]:
        """Of the weighted layers' names in graph order, those this recipe keeps in float;
        ``last`` is every head of a model with ``heads`` output layers."""
        ends = {"first": weighted[:1], "last": weighted[-heads:]}
        return [name for end in ("first", "last") if end in self.keep_float
                for name in ends[end]]


WEIGHTS_ONLY = Recipe("weights-int8", weights_only=True)
QAT_RECIPE = Recipe("qat-pt2e")  # the quantization-aware fine-tuned student's own INT8 graph


@dataclass
class Calibration:
    """What a format's post-training INT8 step works from: its FP32 artifact, the FP32
    student (``torch.nn.Module``), calibration inputs in the format's layout, and whether the
    student is a transformer (NNCF's model type) and how many output layers (heads) it ends
    in; for a format run in a simulator at build time (RKNN), the held-out inputs it
    simulates, the platform it builds for and the folder its build's record goes to."""

    fp32: Path
    model: Any
    inputs: np.ndarray
    transformer: bool = False
    heads: int = 1
    held_out: np.ndarray | None = None
    platform: str = "rk3588"
    keep: Path | None = None
