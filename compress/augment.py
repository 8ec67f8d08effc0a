"""Augmentation that keeps the expression, on stored faces before the one crop function.

Geometry moves the face, not the pixels: the box and the landmarks are turned, scaled and shifted
together about the face's centre, so a square, box or aligned crop made from them comes out
slightly rotated, zoomed and shifted (warping the image and its landmarks together would be
undone by the alignment). Colour: contrast, brightness, tint, sometimes blur or grey. No
mirroring here: a mirrored face is its own sample with its own teacher outputs (a teacher's
decision changes under a flip for several percent of faces).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage, cut, normalize


def jitter_face(face: Face, rng: np.random.Generator, strength: float) -> Face:
    """``face`` turned by up to 8 degrees, scaled by up to 6 % and shifted by up to 4 % of its
    size (times ``strength``) about its box centre."""
    x, y, w, h = face.box
    cx, cy = x + w / 2.0, y + h / 2.0
    angle = math.radians(rng.uniform(-8, 8) * strength)
    scale = 1.0 + rng.uniform(-0.06, 0.06) * strength
    dx, dy = rng.uniform(-0.04, 0.04, 2) * max(w, h) * strength
    marks = None
    if face.landmarks is not None:
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        rel = face.landmarks - (cx, cy)
        marks = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], 1)
        marks = (marks + (cx + dx, cy + dy)).astype(np.float32)
    box = (cx + dx - w * scale / 2.0, cy + dy - h * scale / 2.0, w * scale, h * scale)
    return Face(box, face.score, marks)


def jitter_colour(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Contrast, brightness and tint (BGR or gray uint8), sometimes blur, sometimes grey."""
    contrast = 1.0 + rng.uniform(-0.25, 0.25) * strength
    brightness = rng.uniform(-25, 25) * strength
    tint = rng.uniform(-10, 10, 3) * strength
    out = np.clip(image.astype(np.float32) * contrast + brightness + tint, 0, 255).astype(np.uint8)
    if rng.random() < 0.15 * strength:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    if rng.random() < 0.1 * strength and out.ndim == 3 and out.shape[2] == 3:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def augmented_input(crop: FaceImage, spec: CropSpec, rng: np.random.Generator,
                    strength: float = 1.0) -> np.ndarray:
    """The model input of ``crop`` with the face moved and the colours jittered: the same
    cut and normalisation as the device, the colour jitter between them (on the small cut
    face, not the whole stored region)."""
    face = crop.face if crop.face is not None else \
        Face((0.0, 0.0, float(crop.image.shape[1]), float(crop.image.shape[0])))
    img = cut(crop.image, jitter_face(face, rng, strength), spec)
    return normalize(jitter_colour(img, rng, strength), spec)
