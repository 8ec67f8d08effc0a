"""Augmentation on stored faces before the one crop function: what keeps the expression, and
one thing that changes it.

Geometry moves the face, not the pixels: the box and the landmarks are turned, scaled and shifted
together about the face's centre, so a square, box or aligned crop made from them comes out
slightly rotated, zoomed and shifted (warping the image and its landmarks together would be
undone by the alignment). Colour: contrast, brightness, tint, sometimes blur or grey. No
mirroring here: a mirrored face is its own sample with its own teacher outputs (a teacher's
decision changes under a flip for several percent of faces). The exception, for consistent
teaching only: :func:`warp_expression` moves parts of an aligned face within its cut (mouth,
brows), a change of expression the teacher then labels.

A teacher's cached outputs describe the unaugmented face; for distillation that can afford to
run the teacher every step, :func:`augmented_views` cuts the same augmented (and optionally
mixed) view for the student and the teacher, so the student learns the teacher's function on
the views it is shown ("consistent teaching", Beyer et al. 2022) instead of memorising a fixed
answer for a face it sees in many disguises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage, cut, normalize


def jitter_face(face: Face, rng: np.random.Generator, strength: float,
                zoom: float = 0.0) -> Face:
    """``face`` turned by up to 8 degrees, scaled by up to 6 % and shifted by up to 4 % of its
    size (times ``strength``) about its box centre; with ``zoom``, then cut down to a square of
    side uniform in [1 - zoom, 1] of its own anywhere inside it (a random resized crop: the
    cut shows that part of the face at the full input size)."""
    x, y, w, h = face.box
    cx, cy = x + w / 2.0, y + h / 2.0
    angle = math.radians(rng.uniform(-8, 8) * strength)
    scale = 1.0 + rng.uniform(-0.06, 0.06) * strength
    dx, dy = rng.uniform(-0.04, 0.04, 2) * max(w, h) * strength
    if zoom > 0:
        k = rng.uniform(1.0 - zoom, 1.0)
        scale *= k
        dx, dy = np.array([dx, dy]) + rng.uniform(-0.5, 0.5, 2) * (1.0 - k) * max(w, h)
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


def expression_moves(rng: np.random.Generator) -> np.ndarray:
    """One random change of expression: (7, 2) moves, as fractions of the aligned face's side, of
    the mouth's corners (right, left), the lower lip and the brows (right outer, right inner,
    left inner, left outer). The corners go up or down together and apart or together, the
    lower lip drops, the brows rise or fall, the inner brows are drawn down and together: the
    movements sadness, surprise, fear, disgust and anger are made of."""
    corners, width = rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03)
    jaw, brows, frown = rng.uniform(0.0, 0.05), rng.uniform(-0.03, 0.04), rng.uniform(0.0, 0.03)
    return np.array([[-width, corners], [width, corners], [0.0, jaw],
                     [0.0, -brows], [frown / 2, frown - brows],
                     [-frown / 2, frown - brows], [0.0, -brows]], np.float32)


def require_aligned(spec: CropSpec, whose: str = "this crop") -> None:
    """Refuse ``spec`` for ``--warp`` unless its faces are aligned on five landmarks (the moves
    are placed from the alignment template); ``whose``: what the error names."""
    if not spec.aligned:
        raise MotivnetError(f"--warp needs faces aligned on five landmarks; {whose} takes "
                            f"region {spec.region!r}")


def _expression_points(spec: CropSpec) -> np.ndarray:
    """The points :func:`expression_moves` moves, in ``spec``'s aligned input pixels."""
    require_aligned(spec)
    eye_r, eye_l, _, mouth_r, mouth_l = spec.points()
    side = float(spec.width)
    up, inward = np.array([0.0, -0.10 * side]), np.array([0.06 * side, 0.0])
    return np.stack([mouth_r, mouth_l, (mouth_r + mouth_l) / 2 + (0.0, 0.05 * side),
                     eye_r + up, eye_r + up + inward, eye_l + up - inward, eye_l + up])


def warp_expression(image: np.ndarray, spec: CropSpec, moves: np.ndarray) -> np.ndarray:
    """``image`` (an aligned cut of ``spec``) with the parts of the face under
    :func:`_expression_points` moved by ``moves`` (fractions of the side), smoothly: each move
    fades with distance (a Gaussian of a seventh of the side), so the skin around it follows."""
    side = float(spec.width)
    points, shift = _expression_points(spec), moves * side
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    for (px, py), (dx, dy) in zip(points + shift, shift, strict=True):
        weight = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * (side / 7) ** 2))
        map_x -= weight * dx
        map_y -= weight * dy
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def augmented_views(crops: Sequence[FaceImage], specs: Sequence[CropSpec],
                    rng: np.random.Generator, strength: float = 1.0, mixup: float = 0.0,
                    zoom: float = 0.0, cutmix: float = 0.0, warp: float = 0.0
                    ) -> list[np.ndarray]:
    """The same augmented faces cut once for each spec (a student's and its teacher's input):
    uint8 stacks, one per spec. Each face is moved once and its colours jittered alike in every
    cut; with ``mixup`` > 0 that share of the faces is blended with another face of the batch
    (weight of the other face uniform in 0..0.5, the same in every cut), so the teacher labels
    in-between expressions the unlabelled photos rarely show. ``zoom``: random resized crops
    (:func:`jitter_face`), alike in every cut. ``cutmix``: that share of the faces gets a
    square of another face pasted in (:func:`paste_parts`). ``warp``: that share of the faces
    gets a random change of expression (:func:`expression_moves`), the same in every cut."""
    cuts: list[list[np.ndarray]] = [[] for _ in specs]
    for crop in crops:
        face = jitter_face(whole_face(crop), rng, strength, zoom)
        seed = int(rng.integers(2 ** 32))
        moves = expression_moves(rng) if warp > 0 and rng.random() < warp else None
        for out, spec in zip(cuts, specs, strict=True):
            view = cut(crop.image, face, spec)
            view = view if moves is None else warp_expression(view, spec, moves)
            out.append(jitter_colour(view, np.random.default_rng(seed), strength))
    stacks = [np.stack(c) for c in cuts]
    if len(crops) < 2:
        return stacks
    mixed = _blend(stacks, rng, mixup) if mixup > 0 else stacks
    return paste_parts(mixed, stacks, rng, cutmix) if cutmix > 0 else mixed


def _blend(stacks: Sequence[np.ndarray], rng: np.random.Generator,
           share: float) -> list[np.ndarray]:
    """Mixup: ``share`` of the faces blended with another face of the batch, the other face's
    weight uniform in 0..0.5, the same in every stack."""
    n = len(stacks[0])
    other = rng.permutation(n)
    weight = np.where(rng.random(n) < share, rng.uniform(0.0, 0.5, n), 0.0).astype(np.float32)
    weight = weight.reshape(n, *([1] * (stacks[0].ndim - 1)))
    return [np.clip(np.rint((1 - weight) * s + weight * s[other]), 0, 255).astype(np.uint8)
            for s in stacks]


def paste_parts(views: Sequence[np.ndarray], sources: Sequence[np.ndarray],
                rng: np.random.Generator, share: float) -> list[np.ndarray]:
    """CutMix on aligned faces: ``share`` of the ``views`` get a square of another face of the
    batch (from ``sources``, the same faces unmixed) pasted in at the same place, its area
    uniform in 0..0.5 of the view's, placed anywhere inside it. The square is the same part of
    the face in every stack (its place and side are fractions of each stack's size), so the
    teacher labels the very face the student sees: an eye region or a mouth of another
    expression on this face, a combination the photos may never show."""
    n = len(views[0])
    other = rng.permutation(n)
    chosen = np.flatnonzero(rng.random(n) < share)
    side = np.sqrt(rng.uniform(0.0, 0.5, n))
    top, left = rng.uniform(0.0, 1.0 - side), rng.uniform(0.0, 1.0 - side)
    out = [v.copy() for v in views]
    for view, source in zip(out, sources, strict=True):
        h, w = view.shape[1:3]
        for i in chosen:
            r0, r1 = round(top[i] * h), round((top[i] + side[i]) * h)
            c0, c1 = round(left[i] * w), round((left[i] + side[i]) * w)
            view[i, r0:r1, c0:c1] = source[other[i], r0:r1, c0:c1]
    return out


def training_views(crops: Sequence[FaceImage], specs: Sequence[CropSpec],
                   rng: np.random.Generator, cfg: TrainConfig) -> list[np.ndarray]:
    """:func:`augmented_views` with a training configuration's augmentation (``augment``,
    ``mixup``, ``zoom``, ``cutmix``, ``warp``)."""
    return augmented_views(crops, specs, rng, cfg.augment, cfg.mixup, cfg.zoom, cfg.cutmix,
                           cfg.warp)


def moved_face(crop: FaceImage, rng: np.random.Generator, strength: float) -> FaceImage:
    """``crop`` with its face box and landmarks moved as :func:`jitter_face` moves them, the
    pixels untouched: the face as a detector might have boxed it on the next frame."""
    return FaceImage(crop.image, jitter_face(whole_face(crop), rng, strength))


def whole_face(crop: FaceImage) -> Face:
    """The face of ``crop``, or the whole image where it keeps none."""
    return crop.face if crop.face is not None else \
        Face((0.0, 0.0, float(crop.image.shape[1]), float(crop.image.shape[0])))


def augmented_input(crop: FaceImage, spec: CropSpec, rng: np.random.Generator,
                    strength: float = 1.0, zoom: float = 0.0) -> np.ndarray:
    """The model input of ``crop`` with the face moved and the colours jittered: the same
    cut and normalisation as the device, the colour jitter between them (on the small cut
    face, not the whole stored region)."""
    img = cut(crop.image, jitter_face(whole_face(crop), rng, strength, zoom), spec)
    return normalize(jitter_colour(img, rng, strength), spec)
