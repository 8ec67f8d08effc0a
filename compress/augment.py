"""Augmentation that keeps the expression: flips, small shifts, scales and turns, colour jitter,
blur. Works on square BGR crops before :func:`edge.preprocess.make_input`."""

from __future__ import annotations

import cv2
import numpy as np


def augment(crop: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    side = crop.shape[0]
    out = crop[:, ::-1] if rng.random() < 0.5 else crop
    scale = 1.0 + rng.uniform(-0.08, 0.08) * strength
    angle = rng.uniform(-8, 8) * strength
    shift = rng.uniform(-0.05, 0.05, 2) * side * strength
    m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
    m[:, 2] += shift
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (side, side),
                         borderMode=cv2.BORDER_REPLICATE)
    contrast = 1.0 + rng.uniform(-0.25, 0.25) * strength
    brightness = rng.uniform(-25, 25) * strength
    tint = rng.uniform(-10, 10, 3) * strength
    out = np.clip(out.astype(np.float32) * contrast + brightness + tint, 0, 255).astype(np.uint8)
    if rng.random() < 0.2 * strength:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out
