"""Synthetic labelled faces: drawn faces whose mouth, brows and eyes express each of 7 classes.

SYNTHETIC DATA. These are OpenCV drawings, not photographs. They let tests and the demo train
and check real models with nothing downloaded, and they are realistic enough for OpenCV's face
detectors to find, so the demo runs through the real detector. Figures measured on them say
nothing about accuracy on real faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motivnet_edge.targets.labels import AFFECTNET7

# Class prototypes: mouth curve (+ smile), mouth opening, mouth width, brow raise, brow tilt
# (+ inner ends down = frown), eye opening, nose wrinkle.
_PROTOTYPES: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "Neutral":   (0.00, 0.00, 0.36, 0.00, 0.00, 1.00, 0.0),
    "Happiness": (0.16, 0.07, 0.50, 0.01, 0.00, 0.70, 0.0),
    "Sadness":   (-0.13, 0.00, 0.34, 0.01, -0.10, 0.80, 0.0),
    "Surprise":  (0.00, 0.22, 0.20, 0.09, 0.00, 1.60, 0.0),
    "Fear":      (-0.04, 0.10, 0.55, 0.06, -0.09, 1.55, 0.0),
    "Disgust":   (-0.07, 0.02, 0.32, -0.02, 0.04, 0.55, 1.0),
    "Anger":     (-0.03, 0.00, 0.30, -0.05, 0.13, 0.60, 0.0),
}
_SKIN = np.array([[205, 225, 245], [170, 200, 235], [140, 175, 220], [110, 150, 200],
                  [80, 115, 165], [55, 80, 125]], np.float32)  # BGR, light to dark
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 80, 130], [90, 150, 200],
                  [150, 150, 150]], np.float32)


@dataclass
class SynthFace:
    image: np.ndarray  # BGR uint8
    label: int  # index into AFFECTNET7
    box: tuple[int, int, int, int]  # x, y, w, h of the face


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * 16)), int(round(y * 16))  # 4 bits of sub-pixel precision


def _poly(img, pts, color, thickness, closed=False):
    arr = np.array([_pt(x, y) for x, y in pts], np.int32)
    cv2.polylines(img, [arr], closed, color, thickness, cv2.LINE_AA, shift=4)


def _ellipse(img, c, axes, color, thickness=-1, angle=0.0):
    cv2.ellipse(img, _pt(*c), _pt(*axes), angle, 0, 360, color, thickness, cv2.LINE_AA, shift=4)


def _background(rng: np.random.Generator, h: int, w: int, difficulty: float) -> np.ndarray:
    a = rng.uniform(30, 230, 3)
    b = a + (rng.uniform(30, 230, 3) - a) * difficulty
    t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
    ramp = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]
    img = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3)).copy()
    texture = cv2.resize(rng.normal(0, 18 * difficulty, (max(h // 16, 2), max(w // 16, 2), 3)),
                         (w, h))
    return np.clip(img + texture, 0, 255).astype(np.uint8)


_DARK = (25.0, 25.0, 40.0)


def draw_face(img: np.ndarray, label: int, cx: float, cy: float, fw: float,
              rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw one face expressing ``label`` centred at (cx, cy), ``fw`` pixels wide, onto ``img``
    in place; returns the face box (x, y, w, h)."""
    proto = np.array(_PROTOTYPES[AFFECTNET7[label]], np.float32)
    jitter = rng.normal(0, [0.015, 0.01, 0.02, 0.008, 0.01, 0.07, 0.1]).astype(np.float32)
    curve, opening, mwidth, brow_up, brow_tilt, eye_open, wrinkle = proto + jitter
    opening, eye_open = max(opening, 0.0), max(eye_open, 0.35)
    fh = fw * rng.uniform(1.25, 1.38)
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.92, 1.08)
    shade = tuple(float(v) for v in np.clip(skin * 0.62, 0, 255))
    hair = tuple(float(v) for v in _HAIR[rng.integers(len(_HAIR))])
    _draw_head(img, cx, cy, fw, fh, skin, shade, hair, rng)
    ey = _draw_eyes(img, cx, cy, fw, fh, eye_open, brow_up, brow_tilt, shade, rng)
    _draw_nose(img, cx, cy, fw, fh, ey, wrinkle, shade)
    _draw_mouth(img, cx, cy + fh * 0.29, fw, (curve, opening, mwidth, wrinkle))
    x0, y0 = int(round(cx - fw * 0.5)), int(round(cy - fh * 0.5))
    return x0, y0, int(round(fw)), int(round(fh))


def _draw_head(img: np.ndarray, cx: float, cy: float, fw: float, fh: float, skin: np.ndarray,
               shade: tuple, hair: tuple, rng: np.random.Generator) -> None:
    """Neck, shoulders, hair behind the head, ears, the shaded face and the fringe."""
    cloth = tuple(float(v) for v in rng.uniform(20, 220, 3))
    _ellipse(img, (cx, cy + fh * 1.05), (fw * 1.1, fh * 0.45), cloth)
    cv2.rectangle(img, _pt(cx - fw * 0.2, cy + fh * 0.3), _pt(cx + fw * 0.2, cy + fh * 0.75),
                  shade, -1, cv2.LINE_AA, shift=4)
    _ellipse(img, (cx, cy - fh * 0.08), (fw * 0.56, fh * 0.50), hair)
    for side in (-1, 1):
        _ellipse(img, (cx + side * fw * 0.49, cy + fh * 0.02), (fw * 0.07, fh * 0.11), shade)
    face = np.zeros(img.shape[:2], np.uint8)
    _ellipse(face, (cx, cy), (fw * 0.5, fh * 0.5), 255)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float32)
    r = np.sqrt(((xx - cx) / (fw * 0.5)) ** 2 + ((yy - cy) / (fh * 0.5)) ** 2)
    shading = np.clip(1.08 - 0.35 * r ** 3, 0.55, 1.1)[..., None]
    m = face[..., None].astype(np.float32) / 255.0
    skin_c = np.array([float(v) for v in np.clip(skin, 0, 255)], np.float32)
    skin_img = np.clip(skin_c * shading, 0, 255)
    img[:] = (img * (1 - m) + skin_img * m).astype(np.uint8)
    _ellipse(img, (cx, cy - fh * 0.43), (fw * 0.47, fh * 0.14), hair)  # fringe


def _draw_eyes(img: np.ndarray, cx: float, cy: float, fw: float, fh: float, eye_open: float,
               brow_up: float, brow_tilt: float, shade: tuple, rng: np.random.Generator
               ) -> float:
    """Both eyes and brows; returns the eyes' height."""
    ey = cy - fh * 0.07
    ew, eh = fw * 0.095, fw * 0.045 * eye_open
    for side in (-1, 1):
        ex = cx + side * fw * 0.2
        _ellipse(img, (ex, ey + fw * 0.02), (ew * 1.3, eh * 1.1 + fw * 0.03), shade)
        _ellipse(img, (ex, ey), (ew, eh), (235.0, 235.0, 235.0))
        iris = min(eh, fw * 0.045)
        _ellipse(img, (ex, ey), (iris, iris), tuple(float(v) for v in rng.uniform(20, 110, 3)))
        _ellipse(img, (ex, ey), (iris * 0.5, iris * 0.5), (5.0, 5.0, 5.0))
        _ellipse(img, (ex, ey), (ew, eh), _DARK, max(1, int(fw * 0.012)))
        # brow: inner end at x near the centre, tilt moves the inner end down (+) or up (-)
        by = ey - fw * (0.11 + brow_up) - eh * 0.4
        inner, outer = cx + side * fw * 0.09, cx + side * fw * 0.32
        _poly(img, [(inner, by + brow_tilt * fw), ((inner + outer) / 2, by - fw * 0.015),
                    (outer, by + fw * 0.01)], _DARK, max(2, int(fw * 0.045)))
    return ey


def _draw_nose(img: np.ndarray, cx: float, cy: float, fw: float, fh: float, ey: float,
               wrinkle: float, shade: tuple) -> None:
    """The nose, and wrinkles across its bridge (disgust)."""
    ny = cy + fh * 0.13
    _poly(img, [(cx - fw * 0.01, ey + fw * 0.05), (cx - fw * 0.04, ny), (cx, ny + fw * 0.02)],
          shade, max(1, int(fw * 0.018)))
    for side in (-1, 1):
        _ellipse(img, (cx + side * fw * 0.045, ny + fw * 0.01), (fw * 0.025, fw * 0.015), shade)
    if wrinkle > 0.5:
        for k in range(3):
            yk = ey + fw * (0.05 + 0.025 * k)
            _poly(img, [(cx - fw * 0.06, yk), (cx, yk - fw * 0.015), (cx + fw * 0.06, yk)],
                  shade, max(1, int(fw * 0.012)))


def _draw_mouth(img: np.ndarray, cx: float, my: float, fw: float, shape: tuple) -> None:
    """Upper lip curve, lower lip curve, the cavity between them and teeth in a smile."""
    curve, opening, mwidth, wrinkle = shape
    half = fw * mwidth / 2
    xs = np.linspace(-1, 1, 15)
    lip = (40.0, 30.0, 90.0)  # dark enough to stand out on every skin tone
    upper = [(cx + x * half, my - curve * fw * x * x + curve * fw * 0.3) for x in xs]
    lower = [(cx + x * half, my - curve * fw * x * x + curve * fw * 0.3
              + opening * fw * (1 - x * x) * 1.2) for x in xs]
    if wrinkle > 0.5:  # raised upper lip on one side
        upper = [(px, py - fw * 0.03 * max(0.0, xs[i])) for i, (px, py) in enumerate(upper)]
    if opening > 0.03:
        cavity = np.array([_pt(*p) for p in upper + lower[::-1]], np.int32)
        cv2.fillPoly(img, [cavity], (30.0, 20.0, 60.0), cv2.LINE_AA, shift=4)
        if curve > 0.05:  # teeth in a smile
            teeth = upper + [(px, py + opening * fw * 0.5) for px, py in upper[::-1]]
            cv2.fillPoly(img, [np.array([_pt(*p) for p in teeth], np.int32)],
                         (230.0, 230.0, 230.0), cv2.LINE_AA, shift=4)
    thick = max(2, int(fw * 0.045))
    _poly(img, upper, lip, thick)
    _poly(img, lower, lip, thick)


def _finish(img: np.ndarray, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    """Lighting from one side, sensor noise, sometimes blur, all scaled by ``difficulty``."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))
    gain = 1.0 + (rng.uniform(-0.25, 0.15) + rng.uniform(0.0, 0.35) * ramp) * difficulty
    out = img.astype(np.float32) * gain[..., None]
    out += rng.normal(0, rng.uniform(1, 7) * difficulty, out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.3 * difficulty:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def synth_face(label: int, rng: np.random.Generator, size: int = 160,
               difficulty: float = 1.0) -> SynthFace:
    """A ``size`` x ``size`` image holding one face of class ``label`` with varied size,
    position, skin tone and hair; ``difficulty`` (0..1) scales the background texture, lighting,
    noise and blur (a curriculum starts low)."""
    img = _background(rng, size, size, difficulty)
    fw = size * rng.uniform(0.38, 0.5)
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.04, 0.08) * size
    box = draw_face(img, int(label), cx, cy, fw, rng)
    return SynthFace(_finish(img, rng, difficulty), int(label), box)


def synth_faces(n: int, seed: int = 0, size: int = 160,
                difficulty: float = 1.0) -> list[SynthFace]:
    """``n`` faces with balanced classes (label = i mod 7, then shuffled), reproducible by seed."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(AFFECTNET7))
    return [synth_face(int(k), rng, size, difficulty) for k in labels]


def synth_scene(rng: np.random.Generator, labels: list[int], width: int = 640,
                height: int = 480) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A frame with one face per label side by side (1-3 fit in 640x480); returns the frame and
    the faces' boxes."""
    img = _background(rng, height, width, 1.0)
    boxes = []
    slot = width / max(len(labels), 1)
    for i, label in enumerate(labels):
        fw = min(slot * rng.uniform(0.45, 0.6), height * 0.42)
        cx = slot * (i + 0.5) + rng.uniform(-0.05, 0.05) * slot
        cy = height * rng.uniform(0.38, 0.5)
        boxes.append(draw_face(img, int(label), cx, cy, fw, rng))
    return _finish(img, rng, 1.0), boxes
