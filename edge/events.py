"""Per-track events, as Frigate publishes per-object events, on ``<prefix>/<device>/<camera>/
events``: ``new`` when a face is first tracked, ``update`` when its dominant emotion changes,
``end`` when the tracker lets it go (not seen for ``pipeline.track_ttl`` seconds) with the
track's duration, its dominant emotion over its life and its mean probabilities. A camera's
``presence`` (any face tracked) comes from the same bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Track:
    start: float
    last: float
    label: str
    sums: dict[str, float] = field(default_factory=dict)
    frames: int = 0

    def add(self, probs: dict[str, float], now: float) -> None:
        for k, v in probs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.frames += 1
        self.last = now

    def means(self) -> dict[str, float]:
        return {k: round(v / self.frames, 4) for k, v in self.sums.items()}


class TrackEvents:
    """What happened to each camera's tracks since the last frame, as event dicts."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.tracks: dict[str, dict[int, _Track]] = {}

    def update(self, camera: str, faces: list[dict], now: float) -> list[dict]:
        """Events of one processed frame of ``camera`` (its faces may be none)."""
        live = self.tracks.setdefault(camera, {})
        events = []
        for face in faces:
            track = live.get(face["track"])
            if track is None:
                track = live[face["track"]] = _Track(now, now, face["label"])
                events.append(self._event("new", face, track, now))
            elif track.label != face["label"]:
                events.append(self._event("update", face, track, now, previous=track.label))
                track.label = face["label"]
            track.add(face["probs"], now)
        for tid, track in list(live.items()):
            if now - track.last > self.ttl:
                events.append(self._end(tid, track, now))
                del live[tid]
        return events

    def in_view(self, camera: str) -> int:
        """How many faces ``camera`` has tracked now (its presence: more than none)."""
        return len(self.tracks.get(camera, {}))

    def end_all(self, now: float) -> list[tuple[str, dict]]:
        """``end`` for every live track (the daemon stops): (camera, event)."""
        out = [(cam, self._end(tid, t, now)) for cam, live in self.tracks.items()
               for tid, t in live.items()]
        self.tracks.clear()
        return out

    @staticmethod
    def _event(kind: str, face: dict, track: _Track, now: float, **extra) -> dict:
        return {"type": kind, "track": face["track"], "ts": round(now, 3),
                "start": round(track.start, 3), "label": face["label"], "score": face["score"],
                "box": face["box"], **extra}

    @staticmethod
    def _end(tid: int, track: _Track, now: float) -> dict:
        means = track.means()
        return {"type": "end", "track": tid, "ts": round(now, 3), "start": round(track.start, 3),
                "duration": round(track.last - track.start, 3), "frames": track.frames,
                "label": max(means, key=means.get) if means else track.label,
                "mean_probs": means}
