"""Frame sources: V4L2 index or device, GStreamer pipeline, RTSP/HTTP URL, video file, folder
of images.

A reader thread keeps only the newest frame (stale frames are dropped and counted), so a slow
model always works on the latest picture. A live source that stops delivering is reopened with a
doubling backoff, and every change of state is reported through ``on_status``. A file or folder
is recorded footage: it plays once and reports ``ended``, or replays silently with ``loop``
(wrap-arounds are counted in ``loops``, not as reopens).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.config import CameraConfig, is_file_source
from motivnet_edge.edge.labelled import list_images

log = logging.getLogger(__name__)


def _open_capture(source: str | int) -> Iterator[np.ndarray] | None:
    """An iterator of frames, or None when the source cannot be opened."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        cap = cv2.VideoCapture(int(source), cv2.CAP_V4L2)
    elif isinstance(source, str) and "!" in source:
        cap = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
    elif isinstance(source, str) and Path(source).is_dir():
        images = list_images(Path(source))
        if not images:
            return None
        return (img for p in images if (img := cv2.imread(str(p))) is not None)
    else:
        if isinstance(source, str) and "://" not in source and not Path(source).is_file():
            return None
        cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        return None

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()
    return frames()


class LatestFrameSource:
    """Reads a camera in a thread; :meth:`latest` returns the newest unseen frame."""

    def __init__(self, cfg: CameraConfig,
                 on_status: Callable[[str, str, str, int], None] | None = None,
                 paced: bool = False) -> None:
        self.cfg = cfg
        self.on_status = on_status or (lambda *a: None)
        self.paced = paced  # files and folders: wait until the frame is taken (no drops)
        self.skipped = 0
        self.reopens = 0
        self.loops = 0
        self.ended = False
        self.frames_read = 0
        self.started_at: float | None = None  # monotonic times, for /healthz
        self.last_frame_at: float | None = None
        self._frame: np.ndarray | None = None
        self._index = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cam-{cfg.name}", daemon=True)

    def start(self) -> LatestFrameSource:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        backoff = self.cfg.reopen_backoff
        first, wrapped = True, False
        recorded = is_file_source(self.cfg.source)
        while not self._stop.is_set():
            frames = _open_capture(self.cfg.source)
            if frames is None:
                self.on_status(self.cfg.name, "unavailable", f"cannot open {self.cfg.source}",
                               self.reopens)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                self.reopens += 1
                wrapped = False
                continue
            if not wrapped:  # a loop's wrap-around is not a reopen
                self.on_status(self.cfg.name, "online" if first else "reopened",
                               str(self.cfg.source), self.reopens)
            first, wrapped = False, False
            got = False
            for frame in frames:
                got = True
                backoff = self.cfg.reopen_backoff
                with self._cond:
                    if self.paced:
                        while self._frame is not None and not self._stop.is_set():
                            self._cond.wait(0.1)
                    elif self._frame is not None:
                        self.skipped += 1
                    self._frame = frame
                    self._index += 1
                    self.frames_read += 1
                    self.last_frame_at = time.monotonic()
                    self._cond.notify_all()
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                return
            if got and recorded and self.cfg.loop:
                self.loops += 1
                wrapped = True
                continue
            if got and recorded:  # recorded footage played to its end: an expected stop
                self.ended = True
                self.on_status(self.cfg.name, "ended", f"{self.cfg.source} played to its end",
                               self.reopens)
                with self._cond:
                    self._cond.notify_all()
                return
            self.on_status(self.cfg.name, "lost", "the source stopped delivering frames",
                           self.reopens)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
            self.reopens += 1

    def latest(self, timeout: float = 1.0) -> tuple[int, np.ndarray] | None:
        """The newest frame not yet returned and its index, or None after ``timeout``."""
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            if self._frame is None:
                return None
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return self._index, frame

    @property
    def finished(self) -> bool:
        """True when recorded footage ended and its last frame was taken."""
        return self.ended and self._frame is None

    @property
    def pending(self) -> int:
        """Frames read and not yet taken: 0 or 1, since only the newest is kept."""
        return int(self._frame is not None)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=3.0)


def wait_interval(last: float, fps: float) -> None:
    """Sleep so that frames are processed at most ``fps`` times a second."""
    if fps > 0:
        delay = last + 1.0 / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
