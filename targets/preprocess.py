"""The one crop-and-preprocess path: frame + face box -> model input.

Training, calibration, benchmarks and the device all call :func:`make_input`, so the model sees
the same pixels everywhere. Its parameters are a :class:`CropSpec`, plain data that travels
inside every artifact's metadata (``CropSpec.to_dict`` / ``CropSpec.from_dict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from motivnet_edge.targets.errors import MotivnetError

Box = Sequence[float]  # x, y, w, h in pixels

RESIZE_MODES = ("square", "pad")
COLORS = ("rgb", "bgr", "gray")
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("float32", "float16", "uint8")


@dataclass(frozen=True)
class CropSpec:
    """How a face becomes a model input.

    height, width: the model's input size.
    margin: fraction of the box's longer side added on every side before cropping; the crop is
        square, centred on the box. Parts outside the frame replicate the border.
    resize: ``square`` resizes the square crop to height x width; ``pad`` resizes it to
        width x width and pads ``pad_value`` rows above and below to reach height (MotivNet:
        768x768 padded with white to 1024x768).
    color: channel order of the input, ``rgb``, ``bgr`` or ``gray`` (one channel).
    mean, std: per channel, in 0-255 units; the input is (pixel - mean) / std.
    layout: ``nchw`` or ``nhwc``. dtype: ``float32``, ``float16``, or ``uint8`` (no normalisation).
    """

    height: int = 224
    width: int = 224
    margin: float = 0.15
    resize: str = "square"
    pad_value: int = 255
    color: str = "rgb"
    mean: tuple[float, ...] = (123.675, 116.28, 103.53)
    std: tuple[float, ...] = (58.395, 57.12, 57.375)
    layout: str = "nchw"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name, allowed in (("resize", RESIZE_MODES), ("color", COLORS),
                              ("layout", LAYOUTS), ("dtype", DTYPES)):
            value = getattr(self, name)
            if value not in allowed:
                raise MotivnetError(f"crop spec field {name!r}: {value!r} is not one of {allowed}")
        if self.height <= 0 or self.width <= 0:
            raise MotivnetError(f"crop spec size {self.height}x{self.width} must be positive")
        if self.resize == "pad" and self.height < self.width:
            raise MotivnetError("crop spec resize='pad' needs height >= width")
        if self.margin < 0:
            raise MotivnetError(f"crop spec field 'margin': {self.margin} must be >= 0")
        n = self.channels
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) not in (1, n):
                raise MotivnetError(f"crop spec field {name!r}: {value} needs 1 or {n} values")
            object.__setattr__(self, name, value * n if len(value) == 1 else value)
        if any(s == 0 for s in self.std):
            raise MotivnetError(f"crop spec field 'std': {self.std} contains zero")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of a batch of one: (1, C, H, W) or (1, H, W, C)."""
        if self.layout == "nchw":
            return (1, self.channels, self.height, self.width)
        return (1, self.height, self.width, self.channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> CropSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MotivnetError(f"crop spec has unknown fields {sorted(unknown)}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


# MotivNet's own preprocessing: 768x768 face padded with white to 1024x768, RGB, its mean/std.
MOTIVNET_SPEC = CropSpec(
    height=1024, width=768, margin=0.15, resize="pad", pad_value=255, color="rgb",
    mean=(123.5, 116.5, 103.5), std=(58.5, 57.0, 57.5), layout="nchw", dtype="float32",
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
    """Cut the square region around ``box``; outside the frame the border is replicated.

    ``box=None`` takes the whole frame as the face (images that are already face crops).
    """
    fh, fw = frame.shape[:2]
    if box is None:
        box = (0, 0, fw, fh)
        margin = 0.0
    x0, y0, side = square_region(box, margin)
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx0 >= cx1 or cy0 >= cy1:
        raise MotivnetError(f"face box {tuple(box)} lies outside the {fw}x{fh} frame")
    crop = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = img.shape[1] > width or img.shape[0] > height
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def _convert_color(img: np.ndarray, color: str) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if color == "gray":
        return img if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    if img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color == "rgb" else img


def make_input(frame: np.ndarray, box: Box | None, spec: CropSpec) -> np.ndarray:
    """One model input (no batch axis) from a BGR (or gray) uint8 ``frame`` and a face ``box``.

    Returns (C, H, W) for ``nchw`` or (H, W, C) for ``nhwc``, in ``spec.dtype``.
    """
    if frame is None or frame.ndim not in (2, 3) or frame.size == 0:
        raise MotivnetError("frame must be a non-empty HxW or HxWxC image")
    crop = crop_square(frame, box, spec.margin)
    if spec.resize == "square":
        img = _resize(crop, spec.width, spec.height)
    else:
        img = _resize(crop, spec.width, spec.width)
        top = (spec.height - spec.width) // 2
        bottom = spec.height - spec.width - top
        value = (spec.pad_value,) * (img.shape[2] if img.ndim == 3 else 1)
        img = cv2.copyMakeBorder(img, top, bottom, 0, 0, cv2.BORDER_CONSTANT, value=value)
    img = _convert_color(img, spec.color)
    if spec.dtype == "uint8":
        out = img.astype(np.uint8)
    else:
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        out = ((img.astype(np.float32) - mean) / std).astype(spec.dtype)
    return np.ascontiguousarray(out.transpose(2, 0, 1) if spec.layout == "nchw" else out)


def make_batch(frame: np.ndarray, boxes: Sequence[Box | None], spec: CropSpec) -> np.ndarray:
    """All faces of one frame stacked into one batch."""
    if not boxes:
        n = spec.input_shape
        return np.zeros((0, *n[1:]), dtype=spec.dtype)
    return np.stack([make_input(frame, b, spec) for b in boxes])
