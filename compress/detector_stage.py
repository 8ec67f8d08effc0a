"""The detector stage, ``motivnet-edge detector``: YuNet made into the files the classifier's
engines run (:mod:`.detector_files`), each gated against OpenCV's YuNet on camera frames in every
engine that runs it here, and written as a detector folder whose ``manifest.json`` lists each
file's sha256, role, input size and gate figures per engine. ``detector.model`` takes such a
folder; the package's own (``edge/models/detector``) is made by this stage.

The gate (:data:`motivnet_edge.edge.yunet.GATE`): matched faces >= 99 % at IoU >= 0.9, no
landmark off by more than 1.5 % of its face's size, at most 1 % extra faces. Each file is gated
on frames of the size it serves: the any-size ONNX on frames shrunk as the daemon shrinks them,
each TFLite file on frames that pad to its input. A file that fails in any engine is listed
with a ``rejected-`` role, which no runner picks (LiteRT then runs that size in OpenCV).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.compress.detector_files import make
from motivnet_edge.edge.data.scenes import shrink
from motivnet_edge.edge.detect import DEFAULTS
from motivnet_edge.edge.yunet import (
    GATE,
    ONNX_ROLE,
    TFLITE_ROLE,
    OpenCvYuNet,
    agreement,
    open_yunet,
    passes,
)
from motivnet_edge.targets.engine import runtime_installed
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.manifest import REJECTED_ROLE, Manifest, file_entry

log = logging.getLogger(__name__)
NMS, TOP_K = 0.3, 50


def frames_for(size: tuple[int, int] | None, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames a file of input ``size`` serves: shrunk as the daemon shrinks them (the
    any-size file), or resized to pad to exactly ``size`` (16 px short on a side below 320,
    as a shrunk 4:3 or 3:4 frame is)."""
    if size is None:
        return [shrink(f) for f in frames]
    w, h = size
    fit = (w if w >= DEFAULTS.max_side else w - 16, h if h >= DEFAULTS.max_side else h - 16)
    return [cv2.resize(f, fit, interpolation=cv2.INTER_AREA) for f in frames]


def reference_faces(source: Path, shots: list[np.ndarray]) -> list:
    """OpenCV's YuNet (``source``) on the frames: what every file is held to."""
    reference = OpenCvYuNet(source, DEFAULTS.score_threshold, NMS, TOP_K)
    return [reference.detect(s) for s in shots]


def gate_file(path: Path, size: tuple[int, int] | None, engine: str, shots: list[np.ndarray],
              expected: list, threads: int) -> dict:
    """One file in one engine on its frames (``shots``) against the reference's faces on them
    (``expected``): the gate's figures, whether it passed, and p50 ms per frame."""
    runner = open_yunet(engine, path, DEFAULTS.score_threshold, NMS, TOP_K, threads)
    found, times = [], []
    for shot in shots:
        t0 = time.perf_counter()
        found.append(runner.detect(shot))
        times.append((time.perf_counter() - t0) * 1e3)
    scores = agreement(expected, found)
    return {"file": path.name, "engine": engine, "input": list(size) if size else None,
            "passed": passes(scores), **scores,
            "p50_ms": round(float(np.percentile(times[min(5, len(times) - 1):], 50)), 2)}


def stage_detector(out: Path, frames: list[np.ndarray], source: Path, described: str,
                   threads: int = 1, reference: Path | None = None) -> tuple[list[dict], bool]:
    """The detector folder ``out`` made from ``source`` and gated on ``frames`` (``described``
    says what they are, for the manifest) against ``reference`` in OpenCV (default: the
    source itself; a retrained or pruned YuNet may be held to the published one); the gate
    rows and whether every file passed."""
    out = Path(out)
    reference = Path(reference or source)
    rows, entries = [], []
    for size, path in make(Path(source), out).items():
        role = ONNX_ROLE if size is None else TFLITE_ROLE
        engines = [e for e in (("onnxruntime", "openvino") if size is None else ("litert",))
                   if runtime_installed(e)]
        shots = frames_for(size, frames)
        expected = reference_faces(reference, shots) if engines else []
        gated = [gate_file(path, size, e, shots, expected, threads) for e in engines]
        for row in gated:
            log.info("detector gate: %s in %s: %s", row["file"], row["engine"],
                     "passed" if row["passed"] else "FAILED")
        ok = bool(gated) and all(r["passed"] for r in gated)
        rows += gated
        entries.append(file_entry(path, ("" if ok else REJECTED_ROLE) + role,
                                  input=list(size) if size else None,
                                  gate={r["engine"]: {k: r[k] for k in (
                                      "passed", "faces", "matched", "landmark_error_max",
                                      "extra", "same_count")} for r in gated}))
    Manifest(entries, {"schema": 1, "kind": "yunet", "source": Path(source).name,
                       "source_sha256": sha256_file(source), "reference": reference.name,
                       "reference_sha256": sha256_file(reference), "gate": GATE,
                       "frames": len(frames), "frames_from": described,
                       "threads": threads}).write(out)
    return rows, all(r["passed"] for r in rows)


def markdown(rows: list[dict], frames: int, described: str) -> str:
    """The gate's table, as printed."""
    lines = [f"Detector files against OpenCV's YuNet on {frames} frames ({described}):", "",
             "| file | engine | gate | matched (IoU >= 0.9) | landmark error max | extra | "
             "same count | p50 ms |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['file']} | {r['engine']} | "
                     f"{'passed' if r['passed'] else 'FAILED'} | {r['matched']:.4f} "
                     f"({r['faces']} faces) | {r['landmark_error_max']:.4%} | "
                     f"{r['extra']:.4f} | {r['same_count']:.4f} | {r['p50_ms']} |")
    return "\n".join(lines)
