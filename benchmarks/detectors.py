"""``motivnet-edge bench --detectors``: the face detector in every engine that runs it here,
each against OpenCV's YuNet (the reference) on the same frames: the detector gate's figures
(:func:`motivnet_edge.edge.yunet.agreement`) and the time per frame, interleaved.

The frames are the bench's real photos set into 640x480 camera frames, one to three each
(:func:`motivnet_edge.edge.data.scenes.camera_frames`), and, with ``--video``, up to
``--frames`` frames of that video.
"""

from __future__ import annotations

import time

import numpy as np

from motivnet_edge.edge.data.scenes import shrink
from motivnet_edge.edge.detect import DEFAULTS
from motivnet_edge.edge.yunet import RUNNERS, agreement, open_yunet, passes
from motivnet_edge.targets.engine import runtime_installed


def measure(frames: list[np.ndarray], threads: int, rounds: int = 3) -> list[dict]:
    """One row per YuNet engine installed here: its agreement with OpenCV's YuNet, whether
    it passes the gate, and p50 ms per frame (every engine timed on every frame in turn)."""
    frames = [shrink(f) for f in frames]
    engines = [e for e in RUNNERS if e == "opencv" or runtime_installed(e)]
    runners = {e: open_yunet(e, None, DEFAULTS.score_threshold, 0.3, 50, threads)
               for e in engines}
    found = {e: [r.detect(f) for f in frames] for e, r in runners.items()}  # warm-up too
    times: dict[str, list[float]] = {e: [] for e in engines}
    for _ in range(rounds):
        for frame in frames:
            for engine, runner in runners.items():
                t0 = time.perf_counter()
                runner.detect(frame)
                times[engine].append((time.perf_counter() - t0) * 1e3)
    rows = []
    for engine in engines:
        scores = agreement(found["opencv"], found[engine])
        rows.append({"engine": engine, "reference": engine == "opencv", "threads": threads,
                     "passed": passes(scores), **scores,
                     "p50_ms": round(float(np.percentile(times[engine], 50)), 2),
                     "p95_ms": round(float(np.percentile(times[engine], 95)), 2)})
    return rows


def markdown(rows: list[dict]) -> str:
    """The table as printed and written."""
    lines = [f"Face detector (YuNet 2023mar) per engine against OpenCV's, {rows[0]['frames']} "
             f"frames at most {DEFAULTS.max_side} px a side, {rows[0]['threads']} thread(s):",
             "",
             "| engine | gate | matched (IoU >= 0.9) | landmark error max / mean | extra | "
             "same count | p50 ms | p95 ms |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gate = "reference" if r["reference"] else ("passed" if r["passed"] else "FAILED")
        lines.append(f"| {r['engine']} | {gate} | {r['matched']:.4f} ({r['faces']} faces) | "
                     f"{r['landmark_error_max']:.4%} / {r['landmark_error_mean']:.4%} | "
                     f"{r['extra']:.4f} | {r['same_count']:.4f} | {r['p50_ms']} | "
                     f"{r['p95_ms']} |")
    return "\n".join(lines)
