"""Bundles for the tests: the project's wheel built once per session, bundles made through the
command line, and a snapshot of what an install left on disk."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.data.synthetic import synth_scene


def make_bundle(out: Path, target: str, platform: str, wheel: Path, *extra: str) -> Path:
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "bundle",
                          "--target", target, "--platform", platform, "--project-wheel",
                          str(wheel), "--out", str(out), *extra],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    return out


def unpack(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    (folder,) = dest.iterdir()
    return folder


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def snapshot(*roots: Path) -> dict:
    """Every file and link under ``roots``: content hash, mode, mtime; link targets."""
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                p = Path(dirpath) / name
                st = p.lstat()
                if p.is_symlink():
                    out[str(p)] = ("link", os.readlink(p))
                elif p.is_file():
                    out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode,
                                   st.st_mtime_ns)
    return out


def footage(folder: Path, frames: int = 4, seed: int = 0) -> Path:
    """A folder of 640x480 photos, each with 1-2 synthetic faces (the daemon's recorded
    footage)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(frames):
        frame, _ = synth_scene(rng, [int(x) for x in rng.integers(0, 7, 1 + i % 2)])
        cv2.imwrite(str(folder / f"frame{i:03d}.jpg"), frame)
    return folder


def raw_video(folder: Path, out: Path) -> Path:
    """The photos of ``folder`` as one file of raw 640x480 BGR frames (what GStreamer's
    rawvideoparse reads with nothing but gstreamer1.0-plugins-base)."""
    with open(out, "wb") as f:
        for photo in sorted(folder.glob("*.jpg")):
            f.write(cv2.resize(cv2.imread(str(photo)), (640, 480)).tobytes())
    return out
