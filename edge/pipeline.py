"""The per-frame pipeline: detector -> crop batch -> engine -> probabilities -> tracker -> face
results. The daemon, the benchmarks and the tests run frames through it alike; it knows nothing
of MQTT."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from motivnet_edge.edge.config import PipelineConfig
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.tracker import Tracker, TrackerSettings, iou
from motivnet_edge.targets.circumplex import coordinates, derive
from motivnet_edge.targets.engine import Engine, softmax
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import make_input


@dataclass
class Found:
    """A camera's faces found at its last detection, each one's movement a frame (pixels, from
    the detection before), the frames since, and the last frame's thumbnail."""

    faces: list
    velocity: list
    thumb: np.ndarray | None = None
    since: int = 0


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A frame as 32x24 grey levels (area-averaged: sensor noise averages out, a cut or a
    fast movement does not)."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def _velocity(last: Found | None, found: list) -> list:
    """Each face of ``found``: how far its box centre moved a frame since the last detection,
    from the face there it overlaps most (IoU above 0.3); none found there: no movement."""
    out = []
    frames = 0 if last is None else last.since + 1
    for face in found:
        move = np.zeros(2)
        if last is not None and last.faces and frames > 1:
            overlap = [iou(face.box, old.box) for old in last.faces]
            k = int(np.argmax(overlap))
            if overlap[k] > 0.3:
                move = (_centre(face.box) - _centre(last.faces[k].box)) / frames
        out.append(move)
    return out


def _centre(box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x + w / 2, y + h / 2])


@dataclass
class FrameResult:
    """The faces of one frame (track, box, label, score, probs by label, smoothed over the
    track) and the milliseconds each stage took."""

    faces: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Runs frames of named cameras through detection, one batched inference per frame and a
    tracker per camera.

    An artifact aligned on five landmarks needs a detector that gives them: with one that does
    not (Haar), the pipeline refuses to start unless ``box_crop_fallback`` is set; then such
    faces are cropped as a square around their box and counted in ``box_crop_faces``.

    With ``detect_every`` N above 1, a camera's faces are detected on every N-th frame only;
    the frames between classify the faces found last, each moved on as far as it moved a frame
    between the last two detections (their detect time about 0). A frame whose thumbnail
    differs from the one before by more than ``change_threshold`` (mean absolute difference in
    grey levels; a cut, a fast movement, someone coming in) is detected at once; 0: never.
    """

    def __init__(self, detector: FaceDetector, engine: Engine,
                 max_faces: int = PipelineConfig.max_faces,
                 tracking: TrackerSettings | None = None, box_crop_fallback: bool = False,
                 derive_values: bool = False, detect_every: int = 1,
                 change_threshold: float = 0.0) -> None:
        """``derive_values``: for an artifact without continuous outputs, valence and arousal
        derived from the class probabilities (:mod:`motivnet_edge.targets.circumplex`), marked
        ``va_source: derived`` in each face."""
        if engine.crop.aligned and not detector.gives_landmarks and not box_crop_fallback:
            raise MotivnetError(
                f"{engine.path.name} takes faces aligned on five landmarks and the {detector.kind} "
                f"detector gives none: use detector kind yunet, or set "
                f"pipeline.box_crop_fallback: true to crop a square around each box instead")
        self.detector = detector
        self.engine = engine
        self.labels = engine.labels
        self.max_faces = max_faces
        self.tracking = tracking or TrackerSettings()
        self.trackers: dict[str, Tracker] = {}
        self.fallback_crop = replace(engine.crop, region="square")
        self.box_crop_faces = 0
        self.detect_every = detect_every
        self.change_threshold = change_threshold
        self.change_detections = 0  # detections a change brought forward
        self._found: dict[str, Found] = {}  # camera -> the faces found last
        self.values_source = "model" if engine.outputs.continuous else \
            "derived" if derive_values else None
        self._table = coordinates(self.labels) if self.values_source == "derived" else None

    @property
    def values(self) -> tuple[str, ...]:
        """The continuous outputs each face carries: the model's own, or derived ones."""
        return tuple(self.engine.outputs.continuous) if self.values_source == "model" else \
            ("valence", "arousal") if self.values_source == "derived" else ()

    def _input(self, frame: np.ndarray, face) -> np.ndarray:
        spec = self.engine.crop
        if spec.aligned and face.landmarks is None:
            self.box_crop_faces += 1
            spec = self.fallback_crop
        try:
            return make_input(frame, face, spec)
        except MotivnetError:  # landmarks that cannot be aligned (all on one point)
            if not spec.aligned:
                raise
            self.box_crop_faces += 1
            return make_input(frame, face, self.fallback_crop)

    def _tracker(self, camera: str) -> Tracker:
        if camera not in self.trackers:
            self.trackers[camera] = Tracker(self.tracking)
        return self.trackers[camera]

    def process(self, camera: str, frame: np.ndarray, now: float | None = None) -> FrameResult:
        """Detect, crop, infer all faces in one batch, track and smooth."""
        return self.classify(camera, frame, *self.detect(camera, frame), now=now)

    def detect(self, camera: str, frame: np.ndarray) -> tuple[list, float]:
        """This frame's faces and the milliseconds finding them took. The daemon may run it in
        a worker thread, one frame ahead of :meth:`classify` (a camera's frames in order)."""
        t0 = time.perf_counter()
        faces = self._faces(camera, frame)
        return faces, (time.perf_counter() - t0) * 1e3

    def classify(self, camera: str, frame: np.ndarray, faces: list, detect_ms: float,
                 now: float | None = None) -> FrameResult:
        """Crop ``faces`` (found by :meth:`detect`), infer them in one batch, track and
        smooth."""
        if not faces:
            return FrameResult([], {"detect": detect_ms, "total": detect_ms})
        t1 = time.perf_counter()
        boxes = [f.box for f in faces]
        batch = np.stack([self._input(frame, f) for f in faces])
        t2 = time.perf_counter()
        logits, values = self.engine.run_with_values(batch)
        t3 = time.perf_counter()
        # the continuous outputs ride beside the probabilities, smoothed the same way
        rows = np.concatenate([softmax(logits), *(v[:, None] for v in values.values())], 1)
        tracks = self._tracker(camera).update(boxes, rows,
                                              time.monotonic() if now is None else now)
        n = len(self.labels)
        out = []
        for face, track in zip(faces, tracks, strict=True):
            probs = track.probs[:n]
            k = int(np.argmax(probs))
            out.append({"track": track.id, "box": [int(v) for v in face.box],
                        "label": self.labels[k], "score": round(float(probs[k]), 4),
                        "probs": {lab: round(float(p), 4)
                                  for lab, p in zip(self.labels, probs, strict=True)},
                        **self._values(values, track.probs)})
        return FrameResult(out, {"detect": detect_ms, "preprocess": (t2 - t1) * 1e3,
                                 "infer": (t3 - t2) * 1e3,
                                 "total": detect_ms + (t3 - t1) * 1e3})

    def _faces(self, camera: str, frame: np.ndarray) -> list:
        """The faces of this frame: detected, or on the frames between detections the ones
        found last, moved as far as they moved a frame between the last two detections."""
        last = self._found.get(camera)
        thumb = thumbnail(frame) if self.detect_every > 1 and self.change_threshold else None
        if last is not None and last.since + 1 < self.detect_every:
            changed = thumb is not None and last.thumb is not None and \
                float(np.abs(thumb - last.thumb).mean()) > self.change_threshold
            last.thumb = thumb
            if not changed:
                last.since += 1
                return [f.scaled(1.0, *(v * last.since)) for f, v in
                        zip(last.faces, last.velocity, strict=True)]
            self.change_detections += 1
        found = self.detector.detect(frame)[: self.max_faces]
        self._found[camera] = Found(found, _velocity(last, found), thumb)
        return found

    def forget(self) -> None:
        """Every camera's tracks and carried faces dropped (its cameras changed)."""
        self.trackers.clear()
        self._found.clear()

    def _values(self, names, row: np.ndarray) -> dict:
        """A face's valence and arousal (the model's, smoothed after the probabilities in its
        track's row, or derived from the smoothed probabilities) and where they come from."""
        if self.values_source is None:
            return {}
        n = len(self.labels)
        found = dict(zip(names, row[n:], strict=True)) if self.values_source == "model" else \
            {k: v[0] for k, v in derive(row[None, :n], self._table).items()}
        return {**{k: round(float(v), 4) for k, v in found.items()},
                "va_source": self.values_source}

    def close(self) -> None:
        self.engine.close()


def draw_faces(frame: np.ndarray, faces: list[dict]) -> np.ndarray:
    """A copy of ``frame`` with each face's box and its label and score drawn on it."""
    out = frame.copy()
    thick = max(1, round(max(frame.shape[:2]) / 400))
    for face in faces:
        x, y, w, h = face["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), thick)
        text = f"{face['label']} {face['score']:.2f}"
        scale = 0.4 * thick
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(0, y - th - base - 2)
        cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 2), (0, 220, 0), -1)
        cv2.putText(out, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thick, cv2.LINE_AA)
    return out


def annotated_jpeg(frame: np.ndarray, faces: list[dict]) -> bytes:
    """The frame with its faces drawn, as JPEG (quality 80)."""
    ok, buf = cv2.imencode(".jpg", draw_faces(frame, faces), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""
