"""``motivnet-edge bench --detectors``: the face detector in every engine that runs it here,
each against OpenCV's YuNet (the reference) on the same frames: the detector gate's figures
(:func:`motivnet_edge.edge.yunet.agreement`) and the time per frame, interleaved.

The frames are the bench's real photos set into 640x480 camera frames, one to three each
(:func:`camera_frames`), and, with ``--video``, up to ``--frames`` frames of that video.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.detect import DEFAULTS
from motivnet_edge.edge.yunet import RUNNERS, agreement, open_yunet, passes
from motivnet_edge.targets.engine import runtime_installed


def video_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` frames of a video file, or photos of a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        shots = (cv2.imread(str(p)) for p in files[:limit])
        return [f for f in shots if f is not None]
    cap, out = cv2.VideoCapture(str(path)), []
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def camera_frames(images: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """``images`` set into 640x480 frames as a camera would see people: one to three per
    frame, each scaled to a random height of 160-300 px at a random place on a grey wall."""
    rng = np.random.default_rng(seed)
    frames, i = [], 0
    while i < len(images):
        frame = np.full((480, 640, 3), 128, np.uint8)
        group = images[i:i + int(rng.integers(1, 4))]
        i += len(group)
        for k, image in enumerate(group):
            side = int(rng.integers(160, 301))
            w = max(1, round(image.shape[1] * side / image.shape[0]))
            w = min(w, 640 // len(group))
            part = cv2.resize(image, (w, side), interpolation=cv2.INTER_AREA)
            x = k * (640 // len(group)) + int(rng.integers(0, 640 // len(group) - w + 1))
            y = int(rng.integers(0, 480 - side + 1))
            frame[y:y + side, x:x + w] = part if part.ndim == 3 else part[..., None]
        frames.append(frame)
    return frames


def shrink(frame: np.ndarray, max_side: int = DEFAULTS.max_side) -> np.ndarray:
    """The frame as the detector searches it: its longer side at most ``max_side``."""
    k = min(1.0, max_side / max(frame.shape[:2]))
    return frame if k == 1.0 else cv2.resize(
        frame, (round(frame.shape[1] * k), round(frame.shape[0] * k)),
        interpolation=cv2.INTER_AREA)


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
