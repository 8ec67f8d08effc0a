"""The one crop-and-preprocess path: frame + face box -> model input.

Training, calibration, benchmarks and the device all call :func:`make_input`, so the model sees
the same pixels everywhere. Its parameters are a :class:`CropSpec`, plain data that travels
inside every artifact's metadata (``CropSpec.to_dict`` / ``CropSpec.from_dict``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np

from motivnet_edge.targets.errors import MotivnetError

Box = Sequence[float]  # x, y, w, h in pixels

RESIZE_MODES = ("square", "pad")
REGIONS = ("square", "box", "aligned")
INTERPOLATIONS = ("auto", "linear", "area")
COLORS = ("rgb", "bgr", "gray", "gray3")
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("float32", "float16", "uint8")

MAX_SIDE = 4096  # px: MotivNet's input is 1024x768; a larger crop spec is a broken file

# The five-point face template of 112x112 face models (ArcFace, MobileFaceNet): right eye, left
# eye, nose tip, right and left mouth corner of the subject, in output pixels. YuNet returns its
# landmarks in this order.
FIVE_POINT_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
    (70.7299, 92.2041))
# mirroring a face swaps the subject's right and left eye, and mouth corners
MIRROR_ORDER = (1, 0, 2, 4, 3)
# ImageNet's per-channel mean and std in 0-255 units: the default normalisation
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Face:
    """A face in a frame: box (x, y, w, h) in pixels, a score, and the five landmarks (right
    eye, left eye, nose tip, right and left mouth corner) as a (5, 2) array, or None."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False, compare=False)

    def mirrored(self, width: int) -> Face:
        """The same face in the frame flipped left to right (``width`` pixels wide)."""
        x, y, w, h = self.box
        marks = None
        if self.landmarks is not None:
            marks = self.landmarks.copy()
            marks[:, 0] = width - 1 - marks[:, 0]
            marks = marks[list(MIRROR_ORDER)]
        return Face((width - x - w, y, w, h), self.score, marks)

    def scaled(self, k: float, dx: float = 0.0, dy: float = 0.0) -> Face:
        """Coordinates multiplied by ``k`` after shifting by (dx, dy)."""
        x, y, w, h = self.box
        marks = None if self.landmarks is None else (self.landmarks + (dx, dy)) * k
        return Face(((x + dx) * k, (y + dy) * k, w * k, h * k), self.score, marks)


def _finite(value, name: str) -> float:
    """A crop spec number: a real, finite number (not a string, a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value):
        raise MotivnetError(f"crop spec field {name!r}: {value!r} is not a finite number")
    return float(value)


def _sequence(value, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise MotivnetError(f"crop spec field {name!r}: {value!r} is not a list")
    return tuple(value)


@dataclass(frozen=True)
class CropSpec:
    """How a face becomes a model input.

    height, width: the model's input size.
    region: what is cut from the frame. ``square``: a square centred on the box, its side the
        box's longer side plus ``margin`` of it on every side. ``box``: the box plus ``margin``
        of its width and height on every side, stretched to the input (MotivNet's published
        inference stretches the face crop it is given). ``aligned``: the similarity transform
        that maps the face's five landmarks onto ``template`` (face recognition and expression
        models trained on aligned faces). Parts outside the frame are black in every mode, so
        a stored face region (which may end at the frame's edge) gives the same input.
    template: for ``aligned``, five (x, y) points in input pixels; empty: :data:`FIVE_POINT_112`
        scaled to the input width.
    interpolation: ``auto`` (area when shrinking, else bilinear), ``linear`` or ``area``.
    resize: ``square`` resizes the region to height x width; ``pad`` resizes it to
        width x width and pads ``pad_value`` rows above and below to reach height (MotivNet:
        768x768 padded with white to 1024x768).
    color: channel order of the input, ``rgb``, ``bgr``, ``gray`` (one channel) or ``gray3``
    (grey replicated into three channels, as many models trained on FER2013 take it).
    mean, std: per channel, in 0-255 units; the input is (pixel - mean) / std.
    layout: ``nchw`` or ``nhwc``. dtype: ``float32``, ``float16``, or ``uint8`` (no normalisation).
    """

    height: int = 224
    width: int = 224
    margin: float = 0.15
    resize: str = "square"
    pad_value: int = 255
    color: str = "rgb"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    layout: str = "nchw"
    dtype: str = "float32"
    region: str = "square"
    template: tuple[tuple[float, float], ...] = ()
    interpolation: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("resize", RESIZE_MODES), ("color", COLORS),
                              ("layout", LAYOUTS), ("dtype", DTYPES), ("region", REGIONS),
                              ("interpolation", INTERPOLATIONS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise MotivnetError(f"crop spec field {name!r}: {value!r} is not one of {allowed}")
        for name in ("height", "width", "pad_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise MotivnetError(f"crop spec field {name!r}: {value!r} is not a whole number")
            object.__setattr__(self, name, int(value))
        if not (0 < self.height <= MAX_SIDE and 0 < self.width <= MAX_SIDE):
            raise MotivnetError(f"crop spec size {self.height}x{self.width} must be positive "
                                f"and at most {MAX_SIDE} a side")
        if self.resize == "pad" and self.height < self.width:
            raise MotivnetError("crop spec resize='pad' needs height >= width")
        margin = _finite(self.margin, "margin")
        if not 0 <= margin <= 10:
            raise MotivnetError(f"crop spec field 'margin': {self.margin} must be in [0, 10]")
        object.__setattr__(self, "margin", margin)
        n = self.channels
        for name in ("mean", "std"):
            value = tuple(_finite(v, name) for v in _sequence(getattr(self, name), name))
            if len(value) not in (1, n):
                raise MotivnetError(f"crop spec field {name!r}: {value} needs 1 or {n} values")
            object.__setattr__(self, name, value * n if len(value) == 1 else value)
        if any(s == 0 for s in self.std):
            raise MotivnetError(f"crop spec field 'std': {self.std} contains zero")
        points = _sequence(self.template, "template")
        if points and (len(points) != 5 or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in points)):
            raise MotivnetError(f"crop spec field 'template': {self.template!r} is not five "
                                f"(x, y) points")
        template = tuple(tuple(_finite(v, "template") for v in p) for p in points)
        object.__setattr__(self, "template", template)

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of a batch of one: (1, C, H, W) or (1, H, W, C)."""
        if self.layout == "nchw":
            return (1, self.channels, self.height, self.width)
        return (1, self.height, self.width, self.channels)

    @property
    def aligned(self) -> bool:
        """True when faces are aligned on five landmarks (``region: aligned``)."""
        return self.region == "aligned"

    def points(self) -> np.ndarray:
        """The alignment template in input pixels, (5, 2)."""
        if self.template:
            return np.asarray(self.template, np.float32)
        return np.asarray(FIVE_POINT_112, np.float32) * (self.width / 112.0)

    def to_dict(self) -> dict:
        """As metadata and spec files hold it (tuples as lists)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["template"] = [list(p) for p in self.template]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> CropSpec:
        """A crop spec from its mapping; unknown fields and bad values are named."""
        if not isinstance(data, dict):
            raise MotivnetError(f"crop spec: expected a mapping of fields, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MotivnetError(f"crop spec has unknown fields {sorted(map(str, unknown))}")
        values = dict(data)
        for key in ("mean", "std", "template"):
            if key in values:
                values[key] = tuple(_sequence(values[key], key))
        return cls(**values)


# MotivNet's published inference: the face crop it is given stretched to 768x768 (bilinear),
# padded with white to 1024x768, RGB, its mean/std.
MOTIVNET_SPEC = CropSpec(
    height=1024, width=768, margin=0.0, resize="pad", pad_value=255, color="rgb",
    mean=(123.5, 116.5, 103.5), std=(58.5, 57.0, 57.5), layout="nchw", dtype="float32",
    region="box", interpolation="linear",
)


def square_region(box: Box, margin: float) -> tuple[int, int, int]:
    """The square crop (x0, y0, side) around ``box`` with ``margin`` added on every side."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise MotivnetError(f"face box {tuple(box)} has no area")
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    side_i = max(1, int(round(side)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side_i


def crop_square(frame: np.ndarray, box: Box | None, margin: float) -> np.ndarray:
    """Cut the square region around ``box``; outside the frame is black.

    ``box=None`` takes the whole frame as the face (images that are already face crops).
    """
    if box is None:
        box = (0, 0, frame.shape[1], frame.shape[0])
        margin = 0.0
    x0, y0, side = square_region(box, margin)
    return _cut(frame, x0, y0, x0 + side, y0 + side, box)


def crop_box(frame: np.ndarray, box: Box | None, margin: float) -> np.ndarray:
    """Cut ``box`` with ``margin`` of its width and height added on every side (not squared);
    outside the frame is black."""
    fh, fw = frame.shape[:2]
    x, y, w, h = (0.0, 0.0, float(fw), float(fh)) if box is None else (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise MotivnetError(f"face box {tuple(box)} has no area")
    x0, y0 = int(round(x - margin * w)), int(round(y - margin * h))
    x1, y1 = int(round(x + w + margin * w)), int(round(y + h + margin * h))
    return _cut(frame, x0, y0, x1, y1, box)


def _cut(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, box) -> np.ndarray:
    fh, fw = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx0 >= cx1 or cy0 >= cy1:
        raise MotivnetError(f"face box {tuple(box)} lies outside the {fw}x{fh} frame")
    crop = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):  # black outside the frame, as cv2.warpAffine gives for aligned crops
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_CONSTANT, value=0)
    return crop


def align_matrix(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) that maps the five
    ``landmarks`` onto ``template``, as OpenCV estimates it."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32).reshape(5, 2),
                                       np.asarray(template, np.float32))
    if m is None:
        raise MotivnetError(f"cannot align landmarks {np.round(landmarks, 1).tolist()}")
    return m


def _resize(img: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    if interpolation == "auto":
        shrinking = img.shape[1] > width or img.shape[0] > height
        interpolation = "area" if shrinking else "linear"
    flag = cv2.INTER_AREA if interpolation == "area" else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=flag)


def _region(frame: np.ndarray, face, spec: CropSpec, side_h: int) -> np.ndarray:
    """The face region of ``frame`` at spec.width x ``side_h``."""
    box = face.box if isinstance(face, Face) else face
    if spec.aligned:
        marks = face.landmarks if isinstance(face, Face) else None
        if marks is None:
            raise MotivnetError("this model takes faces aligned on five landmarks, and the face "
                                "detector gave none (use YuNet, or the box-crop fallback)")
        # in pad mode the region is the width x width square between the padded rows
        top = (spec.height - side_h) // 2
        points = spec.points() - np.array([0.0, top], np.float32)
        return cv2.warpAffine(frame, align_matrix(marks, points), (spec.width, side_h))
    crop = crop_box(frame, box, spec.margin) if spec.region == "box" else \
        crop_square(frame, box, spec.margin)
    return _resize(crop, spec.width, side_h, spec.interpolation)


def _convert_color(img: np.ndarray, color: str) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if color in ("gray", "gray3"):
        gray = img if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
        return gray if color == "gray" else np.repeat(gray, 3, axis=2)
    if img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color == "rgb" else img


def make_input(frame: np.ndarray, face: Face | Box | None, spec: CropSpec) -> np.ndarray:
    """One model input (no batch axis) from a BGR (or gray) uint8 ``frame`` and a face: a
    :class:`Face` (box and landmarks), a box (x, y, w, h), or None (the whole frame is the face).

    Returns (C, H, W) for ``nchw`` or (H, W, C) for ``nhwc``, in ``spec.dtype``: the face
    :func:`cut` out, then :func:`normalize`.
    """
    return normalize(cut(frame, face, spec), spec)


def check_cut(spec: CropSpec, where: str) -> None:
    """Cut a face out of a test frame with ``spec`` once, so crop values that pass the load but
    break at cut time (sizes, ratios, a template) are refused where the spec is loaded, naming
    ``where``, not at the first face a camera sees."""
    frame = np.full((256, 256, 3), 128, np.uint8)
    points = spec.points() / max(spec.width, 1) * 128 + 64
    try:
        x = make_input(frame, Face((64.0, 64.0, 128.0, 128.0), 1.0, points), spec)
    except (MotivnetError, cv2.error, ValueError, ZeroDivisionError, OverflowError,
            MemoryError) as exc:
        raise MotivnetError(f"{where}: its crop spec cannot cut a face: {exc}") from exc
    if x.shape != tuple(spec.input_shape[1:]) or not np.isfinite(x).all():
        raise MotivnetError(f"{where}: its crop spec cuts a face into {x.shape}, "
                            f"{'finite' if np.isfinite(x).all() else 'non-finite'} values; "
                            f"the input is {tuple(spec.input_shape[1:])}")


def cut(frame: np.ndarray, face: Face | Box | None, spec: CropSpec) -> np.ndarray:
    """The face at the input's size, still a BGR (or gray) uint8 image (padded in ``pad``
    mode)."""
    if frame is None or frame.ndim not in (2, 3) or frame.size == 0:
        raise MotivnetError("frame must be a non-empty HxW or HxWxC image")
    if spec.resize == "square":
        img = _region(frame, face, spec, spec.height)
    else:
        img = _region(frame, face, spec, spec.width)
        top = (spec.height - spec.width) // 2
        bottom = spec.height - spec.width - top
        value = (spec.pad_value,) * (img.shape[2] if img.ndim == 3 else 1)
        img = cv2.copyMakeBorder(img, top, bottom, 0, 0, cv2.BORDER_CONSTANT, value=value)
    return img


def normalize(img: np.ndarray, spec: CropSpec) -> np.ndarray:
    """A cut face as the model takes it: colour order, mean/std, layout, dtype."""
    img = _convert_color(img, spec.color)
    if spec.dtype == "uint8":
        out = img.astype(np.uint8)
    else:
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        out = ((img.astype(np.float32) - mean) / std).astype(spec.dtype)
    return np.ascontiguousarray(out.transpose(2, 0, 1) if spec.layout == "nchw" else out)


def normalize_batch(images: np.ndarray | Sequence[np.ndarray], spec: CropSpec) -> np.ndarray:
    """Faces already cut (uint8, as :func:`cut` gives) stacked into one model batch."""
    return np.stack([normalize(i, spec) for i in images])


def make_batch(frame: np.ndarray, faces: Sequence[Face | Box | None], spec: CropSpec
               ) -> np.ndarray:
    """All faces of one frame stacked into one batch."""
    if not faces:
        n = spec.input_shape
        return np.zeros((0, *n[1:]), dtype=spec.dtype)
    return np.stack([make_input(frame, f, spec) for f in faces])


@dataclass(frozen=True)
class FaceImage:
    """A face and the image around it, as training, calibration and validation keep them: the
    model input is made from it by the same :func:`make_input` the device calls on a frame.
    ``face=None``: the whole image is the face."""

    image: np.ndarray
    face: Face | None = None

    def input(self, spec: CropSpec) -> np.ndarray:
        """This face as one model input for ``spec`` (cut, resized, normalised)."""
        return make_input(self.image, self.face, spec)

    def mirrored(self) -> FaceImage:
        """The face flipped left to right (its landmarks swapped accordingly)."""
        image = np.ascontiguousarray(self.image[:, ::-1])
        return FaceImage(image, None if self.face is None
                         else self.face.mirrored(self.image.shape[1]))


def make_inputs(faces: Sequence[FaceImage], spec: CropSpec) -> np.ndarray:
    """A batch from stored faces."""
    if not faces:
        return np.zeros((0, *spec.input_shape[1:]), dtype=spec.dtype)
    return np.stack([f.input(spec) for f in faces])
