"""Readers, one per kind of camera source, each opening its source or saying why it cannot.

A camera entry's kind is given in the config or inferred from its source
(:func:`motivnet_edge.edge.config.source_kind`):

- ``v4l2``: an index or ``/dev/video*`` through OpenCV's V4L2 backend, with the size, rate and
  pixel format the config asks for; the mode the driver granted is logged.
- ``libcamera``: a Raspberry Pi camera module through picamera2 (:mod:`.picamera`).
- ``gstreamer``: a pipeline through OpenCV where it was built with GStreamer, else through
  GStreamer's own Python bindings (:mod:`.gstreamer`).
- ``stream``: an RTSP/HTTP URL through OpenCV's FFmpeg backend, RTSP over TCP, with open and read
  timeouts, so a dead stream is a reopen, not a hang.
- ``file``: recorded footage, a video file or a folder of photos.

:func:`check_source` runs at start: a kind this install cannot open at all (no picamera2, no
GStreamer anywhere, no such device) is a :class:`MotivnetError` naming the missing piece.
:func:`open_reader` opens a source each time the frame thread (re)opens it and raises
:class:`CannotOpen` with the reason when it cannot this time.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.config import CameraConfig, source_kind
from motivnet_edge.edge.data.labelled import list_images
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)


class CannotOpen(Exception):
    """The source cannot be opened this time; it may come back. The message says why."""


@dataclass
class Reader:
    """An opened source: its frames (BGR), whether it is footage that ends rather than a live
    source, what was opened and granted (for the log), and why it stopped, once it has."""

    frames: Iterator[np.ndarray]
    recorded: bool
    mode: str
    stopped_because: str = ""
    fps: float = 0.0  # recorded footage's own frame rate, its clock (0: none known)

    def close(self) -> None:
        """Release the source now (a generator's ``finally`` releases the capture)."""
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


def redact(source: str | int) -> str:
    """The source as it may be logged and published: a URL's password replaced by ***."""
    return re.sub(r"(://[^:/@\s]+:)[^@/\s]+@", r"\1***@", str(source))


def capture_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """The frames of an opened OpenCV capture until it stops; released at the end."""
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def v4l2_path(source: str | int) -> str:
    return f"/dev/video{source}" if isinstance(source, int) or source.isdigit() else source


def fourcc_text(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "?"


def _open_v4l2(cam: CameraConfig) -> Reader:
    path = v4l2_path(cam.source)
    index = int(cam.source) if isinstance(cam.source, int) or cam.source.isdigit() else None
    cap = cv2.VideoCapture(index if index is not None else path, cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        raise CannotOpen(f"cannot open V4L2 device {path} (busy, unplugged, or no permission: "
                         f"the service user must be in the video group)")
    if cam.format:  # before the size: the sizes a driver offers depend on the format
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cam.format))
    if cam.width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cam.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cam.height)
    if cam.fps:
        cap.set(cv2.CAP_PROP_FPS, cam.fps)
    granted = (f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x"
               f"{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))} "
               f"{fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))} {cap.get(cv2.CAP_PROP_FPS):g} fps")
    asked = " ".join(x for x in (f"{cam.width}x{cam.height}" if cam.width else "", cam.format,
                                 f"{cam.fps:g} fps" if cam.fps else "") if x)
    mode = f"v4l2 {path}: granted {granted}" + (f" (asked {asked})" if asked else "")
    return Reader(capture_frames(cap), False, mode)


# RTSP over TCP unless the user set FFmpeg's options: over UDP a lossy link tears frames apart
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def _open_stream(cam: CameraConfig) -> Reader:
    os.environ.setdefault(FFMPEG_OPTIONS, "rtsp_transport;tcp")
    ms = int(cam.timeout * 1000)
    cap = cv2.VideoCapture(str(cam.source), cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        cap.release()
        raise CannotOpen(f"cannot open {redact(cam.source)} within {cam.timeout:g} s")
    reader = Reader(capture_frames(cap), False, f"stream {redact(cam.source)} "
                    f"({os.environ[FFMPEG_OPTIONS]}, timeouts {cam.timeout:g} s)")
    reader.stopped_because = f"no frame within {cam.timeout:g} s, or the stream ended"
    return reader


def _open_file(cam: CameraConfig) -> Reader:
    path = Path(str(cam.source))
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise CannotOpen(f"{path} holds no photos")
        frames = (img for p in images if (img := cv2.imread(str(p))) is not None)
        return Reader(frames, True, f"folder {path} ({len(images)} photos)")
    if not path.is_file():
        raise CannotOpen(f"cannot open {path}: no such file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise CannotOpen(f"cannot open {path}: not a video OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS)
    return Reader(capture_frames(cap), True, f"file {path}",
                  fps=fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0)


def open_reader(cam: CameraConfig) -> Reader:
    """The camera's source opened by the reader of its kind; :class:`CannotOpen` otherwise."""
    kind = source_kind(cam)
    if kind == "gstreamer":
        from motivnet_edge.edge import gstreamer

        return gstreamer.open_pipeline(str(cam.source), cam.timeout)
    if kind == "libcamera":
        from motivnet_edge.edge import picamera

        return picamera.open_camera(cam)
    return {"v4l2": _open_v4l2, "stream": _open_stream, "file": _open_file}[kind](cam)


def _raw_node(path: str) -> str:
    """The driver of a V4L2 node that lists only raw Bayer formats, else ""."""
    from motivnet_edge.edge import v4l2

    try:
        device = v4l2.query(path)
    except OSError:  # no permission, or not a V4L2 node: the open will say
        return ""
    return f"driver {device.driver}, raw Bayer only" if device and device.raw_only else ""


def check_source(cam: CameraConfig, where: str = "") -> str:
    """How the camera will be read, or a :class:`MotivnetError` when this install cannot open
    its kind at all: the missing piece, and the package that brings it."""
    kind = source_kind(cam)
    where = where or f"camera {cam.name}"
    try:
        if kind == "gstreamer":
            from motivnet_edge.edge import gstreamer

            return gstreamer.check(str(cam.source))
        if kind == "libcamera":
            from motivnet_edge.edge import picamera

            return picamera.check(cam)
    except MotivnetError as exc:
        raise MotivnetError(f"{where}: {exc}") from exc
    if kind == "v4l2":
        path = v4l2_path(cam.source)
        if Path("/dev").is_dir() and not Path(path).exists():
            raise MotivnetError(f"{where}: no V4L2 device {path} on this machine (plugged in? "
                                f"`motivnet-edge cameras` lists the devices there are; a "
                                f"Raspberry Pi camera module is kind libcamera)")
        raw = _raw_node(path)
        if raw:
            raise MotivnetError(f"{where}: {path} is a camera module's raw node ({raw}), which "
                                f"only libcamera can turn into pictures: use source: "
                                f"libcamera:0 (`motivnet-edge cameras` lists them)")
        return f"v4l2 {path}"
    return f"{kind} {redact(cam.source)}"
