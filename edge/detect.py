"""Face detection with OpenCV only: YuNet (shipped in the package; boxes and five landmarks) by
default, OpenCV's Haar cascade (boxes only) as the fallback a config can choose."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.config import DetectorConfig
from motivnet_edge.edge.yunet import open_yunet, yunet_engine
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import Face

HAAR_FILE = "haarcascade_frontalface_alt2.xml"
KINDS = ("yunet", "haar")
DEFAULTS = DetectorConfig()  # the daemon's detector section declares every default once


def _haar_path() -> Path:
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not base or not (Path(base) / HAAR_FILE).is_file():
        raise MotivnetError(
            "OpenCV's Haar cascade is missing (opencv-python-headless 5.x ships none); "
            "install opencv-python-headless<5 or configure a YuNet model file "
            "(detector.model / MOTIVNET_YUNET)"
        )
    return Path(base) / HAAR_FILE


class FaceDetector:
    """Finds faces in BGR frames.

    kind: ``yunet`` (boxes and five landmarks) or ``haar`` (boxes only, OpenCV's cascade).
    model: a YuNet ``.onnx`` file or a detector folder (``motivnet-edge detector``); ``None``
        uses the environment variable ``MOTIVNET_YUNET`` if set, else the shipped YuNet.
    engine: where YuNet runs (:mod:`motivnet_edge.edge.yunet`): ``opencv`` (the reference),
        ``onnxruntime``, ``openvino``, or ``auto``: ``prefer`` (the classifier's engine) where
        it runs YuNet, else OpenCV; a file of the user's own always runs in OpenCV under auto.
    threads: the YuNet engine's threads (None: its own choice).
    score_threshold: minimum score kept (YuNet's confidence; Haar's level weight is mapped
        to 0..1 with a logistic so the same threshold scale applies roughly).
    min_size: smallest face side in pixels (of the original frame).
    max_side: frames larger than this are shrunk for detection and boxes scaled back (a
        640x480 frame is searched at 320x240: about 4x less work for faces of usual size).
    scale_factor: Haar's step between searched face sizes; 1.2 is about 1.7x faster than 1.1
        and finds fewer faces.
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 score_threshold: float = DEFAULTS.score_threshold, nms_threshold: float = 0.3,
                 top_k: int = 50, min_size: int = DEFAULTS.min_size,
                 max_side: int = DEFAULTS.max_side, scale_factor: float = DEFAULTS.scale_factor,
                 kind: str = DEFAULTS.kind, engine: str = DEFAULTS.engine,
                 prefer: str | None = None, threads: int | None = None) -> None:
        if kind not in KINDS:
            raise MotivnetError(f"face detector kind {kind!r} is not one of {KINDS}")
        if kind == "haar" and model is not None:
            raise MotivnetError(f"face detector model {model} is a YuNet file: the Haar "
                                f"cascade takes none (kind: yunet, or leave model empty)")
        self.score_threshold = score_threshold
        self.min_size = min_size
        self.max_side = max_side
        if scale_factor <= 1.0:
            raise MotivnetError(f"face detector scale_factor {scale_factor} must be above 1")
        self.scale_factor = scale_factor
        if kind == "yunet":
            own = model or os.environ.get("MOTIVNET_YUNET")
            # a file of the user's own runs in OpenCV under auto; a detector folder (made by
            # motivnet-edge detector) in the classifier's engine, as the shipped one
            self.engine = yunet_engine(engine, prefer if not own or Path(own).is_dir() else None)
            self._yunet = open_yunet(self.engine, own, score_threshold, nms_threshold, top_k,
                                     threads)
            self.kind = "yunet"
            self.source = str(own or self._yunet.path)
        else:
            self.engine = "opencv"
            path = _haar_path()
            self._haar = cv2.CascadeClassifier(str(path))
            if self._haar.empty():
                raise MotivnetError(f"cannot load Haar cascade {path}")
            self.kind = "haar"
            self.source = str(path)

    @property
    def gives_landmarks(self) -> bool:
        """True when every face comes with its five landmarks (YuNet)."""
        return self.kind == "yunet"

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in ``frame`` (BGR or gray uint8), largest first."""
        if frame is None or frame.size == 0:
            return []
        scale = min(1.0, self.max_side / max(frame.shape[:2])) if self.max_side else 1.0
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
            interpolation=cv2.INTER_AREA)
        found = self._detect_yunet(small) if self.kind == "yunet" else \
            self._detect_haar(small, max(8, int(self.min_size * scale)))
        faces = [f if scale == 1.0 else _rescale(f, 1.0 / scale, frame.shape) for f in found]
        faces = [f for f in faces if min(f.box[2], f.box[3]) >= self.min_size]
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)

    def _detect_yunet(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        rows = self._yunet.detect(frame)
        out = []
        for r in rows:
            if not np.all(np.isfinite(r[:15])):  # YuNet now and then gives a broken row
                continue
            x, y, bw, bh = (int(round(v)) for v in r[:4])
            x, y = max(x, 0), max(y, 0)
            bw, bh = min(bw, w - x), min(bh, h - y)
            out.append(Face((x, y, bw, bh), float(r[14]), r[4:14].reshape(5, 2).copy()))
        return out

    def _detect_haar(self, frame: np.ndarray, min_size: int) -> list[Face]:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        boxes, _, weights = self._haar.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=3, minSize=(min_size, min_size),
            outputRejectLevels=True)
        out = []
        for box, weight in zip(boxes, np.ravel(weights), strict=False):
            score = float(1.0 / (1.0 + np.exp(-float(weight))))
            if score >= self.score_threshold:
                out.append(Face(tuple(int(v) for v in box), score))
        return out


def _rescale(face: Face, k: float, shape: tuple) -> Face:
    x, y, w, h = (int(round(v * k)) for v in face.box)
    x, y = max(x, 0), max(y, 0)
    box = (x, y, min(w, shape[1] - x), min(h, shape[0] - y))
    marks = None if face.landmarks is None else face.landmarks * k
    return Face(box, face.score, marks)
