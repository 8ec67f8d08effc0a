"""What the daemon reports of itself every ``mqtt.stats_interval``: per-stage latencies over a
window, frames per second, CPU time per frame and the share of a frame spent detecting."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class Stats:
    """Per-stage latencies over a window, counters, and since the last report: the fps, the
    process's CPU time per frame (every thread: cameras, MQTT, detection, inference) and the
    share of a frame's time spent detecting faces."""

    def __init__(self, window: int = 500) -> None:
        self.times: dict[str, deque] = {}
        self.window = window
        self.frames = 0
        self.since, self.cpu_since = time.monotonic(), time.process_time()

    def add(self, timings: dict[str, float]) -> None:
        """One processed frame's per-stage times (ms)."""
        self.frames += 1
        for k, v in timings.items():
            self.times.setdefault(k, deque(maxlen=self.window)).append(v)

    def report(self) -> dict:
        """The figures since the last report (the latencies over the window)."""
        now, cpu = time.monotonic(), time.process_time()
        fps = self.frames / max(now - self.since, 1e-6)
        cpu_ms = 1000.0 * (cpu - self.cpu_since) / self.frames if self.frames else None
        self.frames, self.since, self.cpu_since = 0, now, cpu
        lat = {k: {"p50": round(float(np.percentile(v, 50)), 2),
                   "p95": round(float(np.percentile(v, 95)), 2)} for k, v in self.times.items()
               if v}
        total = sum(self.times.get("total", ()))
        share = sum(self.times.get("detect", ())) / total if total else None
        return {"fps": round(fps, 2), "latency_ms": lat,
                "cpu_ms_per_frame": None if cpu_ms is None else round(cpu_ms, 2),
                "detect_share": None if share is None else round(share, 3)}
