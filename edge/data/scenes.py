"""Camera frames for checking a face detector: real photos set into 640x480 frames as a camera
would see people, a video's frames, and a frame shrunk as the detector searches it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.config import DetectorConfig

MAX_SIDE = DetectorConfig.max_side


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


def shrink(frame: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """The frame as the detector searches it: its longer side at most ``max_side``."""
    k = min(1.0, max_side / max(frame.shape[:2]))
    return frame if k == 1.0 else cv2.resize(
        frame, (round(frame.shape[1] * k), round(frame.shape[0] * k)),
        interpolation=cv2.INTER_AREA)


def gate_frames(photos: Path | None, video: Path | None, limit: int) -> tuple[list, str]:
    """Frames to gate a detector on and what they are: up to ``limit`` real photos set into
    camera frames and up to ``limit`` frames of a video, or synthetic scenes (plumbing)."""
    frames, parts = [], []
    if photos is not None:
        shots = video_frames(photos, limit)
        frames += camera_frames(shots, seed=1)
        parts.append(f"{len(shots)} photos of {photos} set into camera frames")
    if video is not None:
        got = video_frames(video, limit)
        frames += got
        parts.append(f"{len(got)} frames of {video}")
    if not frames:
        from motivnet_edge.edge.data.synthetic import synth_scene

        rng = np.random.default_rng(0)
        frames = [synth_scene(rng, [int(x) for x in rng.integers(0, 7, 1 + i % 3)])[0]
                  for i in range(min(limit, 60))]
        parts.append(f"{len(frames)} synthetic scenes (plumbing only)")
    return frames, "; ".join(parts)
