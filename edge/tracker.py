"""IoU tracking of faces across frames, with exponential smoothing of each track's
probabilities, so a label does not flicker from frame to frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class TrackerSettings:
    """How faces are followed across frames: the one place their defaults are declared (the
    daemon's ``pipeline`` section takes them from here)."""

    smoothing: float = 0.6  # weight of a track's past probabilities (exponential average)
    iou_threshold: float = 0.3  # a box continues a track when it overlaps it this much
    ttl: float = 2.0  # seconds a track survives without a match


@dataclass
class Track:
    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    last_seen: float


class Tracker:
    """The tracks of one camera."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()) -> None:
        self.iou_threshold, self.smoothing, self.ttl = \
            settings.iou_threshold, settings.smoothing, settings.ttl
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, boxes: list, probs: np.ndarray, now: float) -> list[Track]:
        """Match boxes to tracks greedily by IoU; returns the track of each box, in order."""
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.ttl]
        pairs = sorted(((iou(b, t.box), i, j) for i, b in enumerate(boxes)
                        for j, t in enumerate(self.tracks)), reverse=True)
        assigned: dict[int, Track] = {}
        used = set()
        for score, i, j in pairs:
            if score < self.iou_threshold or i in assigned or j in used:
                continue
            t = self.tracks[j]
            t.probs = self.smoothing * t.probs + (1 - self.smoothing) * probs[i]
            t.box, t.last_seen = tuple(boxes[i]), now
            assigned[i] = t
            used.add(j)
        for i, box in enumerate(boxes):
            if i not in assigned:
                t = Track(self._next, tuple(box), probs[i].copy(), now)
                self._next += 1
                self.tracks.append(t)
                assigned[i] = t
        return [assigned[i] for i in range(len(boxes))]
