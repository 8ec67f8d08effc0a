"""The Python API: emotions of the faces in a picture or a stream, in three lines, no torch.

    from motivnet_edge import EmotionRecognizer
    recognizer = EmotionRecognizer()              # the shipped model, the best target here
    faces = recognizer("photo.jpg")               # or a numpy array, or a PIL image

It is made of the daemon's own pieces: the target profile and engine
(:func:`motivnet_edge.targets.profiles.resolve`), the face detector
(:class:`motivnet_edge.edge.detect.FaceDetector`), the frame pipeline
(:class:`motivnet_edge.edge.pipeline.Pipeline`) and, for :meth:`EmotionRecognizer.stream`, the
camera sources (:class:`motivnet_edge.edge.sources.LatestFrameSource`). Every error is a
:class:`motivnet_edge.targets.errors.MotivnetError` whose message names what was wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motivnet_edge.edge.assemble import open_pipeline
from motivnet_edge.edge.config import CameraConfig, DetectorConfig, PipelineConfig, source_kind
from motivnet_edge.edge.pipeline import Pipeline
from motivnet_edge.edge.readers import check_source
from motivnet_edge.edge.shipped import default_model
from motivnet_edge.edge.sources import LatestFrameSource
from motivnet_edge.edge.tracker import TrackerSettings
from motivnet_edge.targets.errors import MotivnetError

DETECTOR = DetectorConfig()
SINGLE = "picture"  # the pipeline's camera name for single pictures (no tracking)


@dataclass(frozen=True)
class FaceEmotion:
    """One face: its box (x, y, w, h) and five landmarks (right eye, left eye, nose tip, right
    and left mouth corner; None from a detector without them) in the picture's pixels, the
    most likely label, its score, every label's probability, valence and arousal with where
    they come from (``model``: the artifact's own outputs; ``derived``: from the class
    probabilities; None: neither), and in a stream the id of its track."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None = field(repr=False, compare=False)
    label: str
    score: float
    probabilities: dict[str, float]
    valence: float | None = None
    arousal: float | None = None
    values_source: str | None = None
    track: int | None = None


@dataclass(frozen=True)
class FrameEmotions:
    """One frame of a stream: its index (from 1), the frame (BGR), its faces, and the
    milliseconds each stage took."""

    index: int
    frame: np.ndarray = field(repr=False, compare=False)
    faces: list[FaceEmotion]
    timings: dict[str, float]


class EmotionRecognizer:
    """Finds faces and their emotions.

    model: an artifact file or a compress output folder (default: the shipped model).
    target: a profile from ``motivnet-edge targets``, or ``auto`` (the best one here).
    engine: override the profile's engine (``onnxruntime``, ``openvino``, ``litert``).
    threads: engine threads (default 1: a picture's faces are too small a batch to split).
    detector: ``yunet`` (boxes and landmarks) or ``haar`` (boxes only); detector_engine where
        YuNet runs (``auto``: the classifier's engine); score_threshold, min_size, max_side as
        the daemon's ``detector`` section.
    max_faces: the most faces a picture gives, largest first.
    derive_values: valence and arousal derived from the class probabilities for a model
        without its own (marked ``values_source == "derived"``).
    smoothing, track_ttl: a stream's tracking, as the daemon's ``pipeline`` section.
    """

    def __init__(self, model: str | os.PathLike | None = None, target: str = "auto",
                 engine: str | None = None, threads: int | None = 1,
                 detector: str = DETECTOR.kind, detector_engine: str = DETECTOR.engine,
                 score_threshold: float = DETECTOR.score_threshold,
                 min_size: int = DETECTOR.min_size, max_side: int = DETECTOR.max_side,
                 max_faces: int = PipelineConfig.max_faces, derive_values: bool = False,
                 smoothing: float = TrackerSettings.smoothing,
                 track_ttl: float = TrackerSettings.ttl) -> None:
        if threads is not None and threads < 1:
            raise MotivnetError(f"threads {threads} must be at least 1 (or None)")
        if not 0.0 <= smoothing < 1.0:
            raise MotivnetError(f"smoothing {smoothing} must be in [0, 1)")
        self._pictures, self.target = open_pipeline(
            model if model is not None else default_model(), target, engine, threads,
            DetectorConfig(kind=detector, engine=detector_engine, threads=threads,
                           score_threshold=score_threshold, min_size=min_size,
                           max_side=max_side),
            max_faces=max_faces, box_crop_fallback=detector == "haar",
            derive_values=derive_values)
        self.engine, self.detector = self._pictures.engine, self._pictures.detector
        self._stream_settings = (max_faces, TrackerSettings(smoothing, ttl=track_ttl),
                                 detector == "haar", derive_values)

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels, in its output order."""
        return tuple(self.engine.labels)

    def __call__(self, image, color: str = "bgr") -> list[FaceEmotion]:
        """The faces of one picture, largest first: ``image`` is a numpy array (``color``
        ``bgr`` as OpenCV reads, or ``rgb``; grey allowed), a PIL image or a file's path."""
        frame = as_bgr(image, color)
        self._pictures.trackers.pop(SINGLE, None)  # each picture on its own
        return self._faces(self._pictures, SINGLE, frame, None)[0]

    def stream(self, source: str | int | os.PathLike, fps: float = 0.0,
               loop: bool = False) -> Iterator[FrameEmotions]:
        """The frames of any source the daemon reads (a video file, a folder of photos, a
        V4L2 index or device, ``libcamera:N``, an RTSP/HTTP URL, a GStreamer pipeline), each
        with its faces tracked across frames. Recorded footage gives every frame and ends;
        a live source gives its newest frames until the caller stops iterating."""
        cam = CameraConfig(name="stream", source=str(source) if isinstance(source, Path)
                           else source, fps=fps, loop=loop)
        if source_kind(cam) == "file" and not Path(str(cam.source)).exists():
            raise MotivnetError(f"stream source {source}: no such file or folder")
        check_source(cam, f"stream source {source!r}")
        pipeline = Pipeline(self.detector, self.engine, *self._stream_settings)
        src = LatestFrameSource(cam, paced=True).start()
        try:
            while not src.finished:
                got = src.latest(timeout=0.5)
                if got is None:
                    continue
                index, frame = got
                faces, timings = self._faces(pipeline, cam.name, frame, src.clock(index))
                yield FrameEmotions(index, frame, faces, timings)
        finally:
            src.stop()

    def _faces(self, pipeline: Pipeline, camera: str, frame: np.ndarray,
               clock: float | None) -> tuple[list[FaceEmotion], dict[str, float]]:
        found, ms = pipeline.detect(camera, frame)
        result = pipeline.classify(camera, frame, found, ms, now=clock)
        out = []
        for face, got in zip(found, result.faces, strict=True):
            out.append(FaceEmotion(
                tuple(got["box"]), None if face.landmarks is None else face.landmarks.copy(),
                got["label"], got["score"], got["probs"], got.get("valence"),
                got.get("arousal"), got.get("va_source"),
                got["track"] if camera != SINGLE else None))
        return out, result.timings

    def close(self) -> None:
        """Releases the engine."""
        self.engine.close()

    def __enter__(self) -> EmotionRecognizer:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def as_bgr(image, color: str = "bgr") -> np.ndarray:
    """A picture as the BGR uint8 array the pipeline takes: from a path (read by OpenCV), a PIL
    image, or a numpy array (``color`` ``bgr`` or ``rgb``; grey or BGRA/RGBA converted)."""
    import cv2

    if color not in ("bgr", "rgb"):
        raise MotivnetError(f"color {color!r} is not bgr or rgb")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if frame is None:
            raise MotivnetError(f"picture {path} cannot be read (no such file, or not an "
                                f"image OpenCV reads)")
        return frame
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        image, color = np.asarray(image.convert("RGB")), "rgb"
    if not isinstance(image, np.ndarray):
        raise MotivnetError(f"a picture is a numpy array, a PIL image or a path, not "
                            f"{type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or \
            (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or image.size == 0:
        raise MotivnetError(f"a picture array must be uint8 HxW, HxWx3 or HxWx4, not "
                            f"{image.dtype} {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if color == "rgb" else
                            cv2.COLOR_BGRA2BGR)
    return image[..., ::-1].copy() if color == "rgb" else image
