"""The frames the daemon handles, taken from its sources in turn, each with its faces found.

With ``overlap`` a frame's detection starts in a worker thread the moment the frame is taken,
and the frame before it is handed out to be classified meanwhile: detection of the next frame
overlaps classification of this one (ONNX Runtime, OpenVINO, LiteRT and OpenCV release the GIL
while they compute, so the two use two cores). A frame waits for a successor only while its
own detection is still running, so a camera slower than the pipeline sees no added latency; a
busy one (or recorded footage) keeps both threads working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from motivnet_edge.edge.pipeline import Pipeline
from motivnet_edge.edge.sources import LatestFrameSource, interval_left, wait_interval

POLL_S = 0.001


@dataclass
class Taken:
    """A frame taken from a camera (when, monotonic; its time in recorded footage, else None)
    and its detection: (faces, ms), or a worker's future of them."""

    camera: str
    index: int
    frame: np.ndarray
    found: Future | tuple[list, float]
    at: float = 0.0
    clock: float | None = None

    def faces(self) -> tuple[list, float]:
        """The frame's faces and the milliseconds detection took (waits for the worker)."""
        return self.found.result() if isinstance(self.found, Future) else self.found


class FrameFeed:
    """Frames from the sources in turn, each with its faces (see the module's text)."""

    def __init__(self, overlap: bool) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="detect") if overlap else None
        self._pending: Taken | None = None
        self.last_frame: dict[str, float] = {}  # camera -> when its last frame was taken

    def round(self, sources: list[LatestFrameSource], pipeline: Pipeline) -> Iterator[Taken]:
        """One turn over ``sources``: the frames ready to be classified, in order."""
        for src in sources:
            name = src.cfg.name
            last = self.last_frame.get(name, 0.0)
            if self._pending is not None and interval_left(last, src.cfg.fps) > POLL_S:
                yield from self.drain()  # not held while a capped camera's turn waits
            wait_interval(last, src.cfg.fps)
            got = src.latest(timeout=POLL_S if self._pending else 0.2 / len(sources))
            ready = None
            if self._pending is not None and (got is not None or self._pending.found.done()):
                ready, self._pending = self._pending, None
            if got is not None:
                now = self.last_frame[name] = time.monotonic()
                clock = src.clock(got[0])
                if self._pool is None:
                    yield Taken(name, *got, pipeline.detect(name, got[1]), now, clock)
                else:
                    self._pending = Taken(name, *got, self._pool.submit(
                        pipeline.detect, name, got[1]), now, clock)
            if ready is not None:
                yield ready

    def drain(self) -> Iterator[Taken]:
        """The frame whose detection is still running, if any."""
        if self._pending is not None:
            ready, self._pending = self._pending, None
            yield ready

    def close(self) -> None:
        """Drops the frame still waiting and stops the worker."""
        self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
