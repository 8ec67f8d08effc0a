"""Frame sources: a thread per camera over the reader of its kind (edge/readers.py).

A reader thread keeps only the newest frame (stale frames are dropped and counted), so a slow
model always works on the latest picture. A live source that stops delivering is reopened with a
doubling backoff, and every change of state is reported through ``on_status`` with the reader's
reason. Recorded footage (a file, a folder, a GStreamer pipeline that is not live) plays once
and reports ``ended``, or replays silently with ``loop`` (wrap-arounds are counted in
``loops``, not as reopens).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from motivnet_edge.edge.config import CameraConfig
from motivnet_edge.edge.readers import CannotOpen, Reader, open_reader, redact

log = logging.getLogger(__name__)


class LatestFrameSource:
    """Reads a camera in a thread; :meth:`latest` returns the newest unseen frame."""

    def __init__(self, cfg: CameraConfig,
                 on_status: Callable[[str, str, str, int], None] | None = None,
                 paced: bool = False) -> None:
        self.cfg = cfg
        self.on_status = on_status or (lambda *a: None)
        # recorded footage: wait until the frame is taken (no drops); live sources never wait
        self.paced = paced
        self.skipped = 0
        self.reopens = 0
        self.loops = 0
        self.ended = False
        self.frames_read = 0
        self.started_at: float | None = None  # monotonic times, for /healthz
        self.last_frame_at: float | None = None
        self._frame: np.ndarray | None = None
        self._index = 0
        self._fps = 0.0  # recorded footage's frame rate (its clock), else 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cam-{cfg.name}", daemon=True)

    def start(self) -> LatestFrameSource:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        backoff = self.cfg.reopen_backoff
        first, wrapped, mode = True, False, ""
        while not self._stop.is_set():
            try:
                reader = open_reader(self.cfg)
            except CannotOpen as exc:
                self.on_status(self.cfg.name, "unavailable", str(exc), self.reopens)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                self.reopens += 1
                wrapped = False
                continue
            if reader.mode != mode:  # what the driver granted, once (again if it changes)
                log.info("camera %s: %s", self.cfg.name, reader.mode)
                mode = reader.mode
            if not wrapped:  # a loop's wrap-around is not a reopen
                self.on_status(self.cfg.name, "online" if first else "reopened",
                               redact(self.cfg.source), self.reopens)
            first, wrapped = False, False
            got = self._deliver(reader)
            if got:
                backoff = self.cfg.reopen_backoff
            if self._stop.is_set():
                return
            if got and reader.recorded and self.cfg.loop:
                self.loops += 1
                wrapped = True
                continue
            if got and reader.recorded:  # recorded footage played to its end: an expected stop
                self.ended = True
                self.on_status(self.cfg.name, "ended",
                               f"{redact(self.cfg.source)} played to its end", self.reopens)
                with self._cond:
                    self._cond.notify_all()
                return
            self.on_status(self.cfg.name, "lost", reader.stopped_because
                           or "the source stopped delivering frames", self.reopens)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
            self.reopens += 1

    def _deliver(self, reader: Reader) -> bool:
        """Hand the reader's frames over until it stops or we are stopped; whether it gave
        any."""
        got = False
        self._fps = reader.fps if reader.recorded else 0.0
        try:
            for frame in reader.frames:
                got = True
                with self._cond:
                    if self.paced and reader.recorded:
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
                    break
        finally:
            reader.close()
        return got

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

    def clock(self, index: int) -> float | None:
        """Recorded footage's own time of frame ``index`` in seconds (its frame rate known),
        so that tracks age with the footage however fast it is processed; None: a live
        source, whose frames age on the wall clock."""
        return index / self._fps if self._fps else None

    @property
    def finished(self) -> bool:
        """True when recorded footage ended and its last frame was taken."""
        return self.ended and self._frame is None

    @property
    def pending(self) -> int:
        """Frames read and not yet taken: 0 or 1, since only the newest is kept."""
        return int(self._frame is not None)

    def stop(self) -> None:
        """Stops reading and releases the source (a source never started: nothing to do)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join(timeout=3.0)


def interval_left(last: float, fps: float) -> float:
    """Seconds until a frame may be processed again at most ``fps`` times a second, ``last``
    the monotonic time of the one before (0 when free to go now or without a cap)."""
    return max(0.0, last + 1.0 / fps - time.monotonic()) if fps > 0 else 0.0


def wait_interval(last: float, fps: float) -> None:
    """Sleep so that frames are processed at most ``fps`` times a second."""
    delay = interval_left(last, fps)
    if delay > 0:
        time.sleep(delay)
