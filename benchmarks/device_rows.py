"""``bench --device-python``: every artifact run again in another Python, a device install's
interpreter or one inside an emulated root, beside this host's run of the same files.

The host cuts the faces once per artifact with the one crop function and copies the
artifacts and their inputs where the other interpreter sees them (under ``ROOT/tmp`` with
``--device-root``); the other side, this module run as ``python -m``, needs no torch: it opens
every artifact in every engine it has, runs the inputs one face at a time and writes logits and
timings back. The table says, per artifact and engine, whether it opened there, its top-1 and
how often it agrees with this host's run. Under emulation (the other side reports another
machine than this one) its times are marked as emulated: they say nothing about the device.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.host import cpu_info
from motivnet_edge.targets.engine import ENGINES, EngineOptions, engines_for, load_engine
from motivnet_edge.targets.formats import format_of, is_artifact
from motivnet_edge.targets.manifest import MANIFEST
from motivnet_edge.targets.metadata import artifact_files, read_metadata
from motivnet_edge.targets.preprocess import CropSpec, make_inputs

RESULTS = "device-results.json"


def _run_all(path: Path, engine: str, x: np.ndarray, threads: int) -> tuple[np.ndarray, list]:
    with load_engine(path, engine, EngineOptions(threads=threads)) as eng:
        logits, ms = [], []
        for i in range(len(x)):
            t0 = time.perf_counter()
            logits.append(eng.run(x[i:i + 1]))
            ms.append((time.perf_counter() - t0) * 1e3)
    return np.concatenate(logits), ms


def device_side(job_path: Path) -> dict:
    """Run on the other side: every artifact of the job in every engine that opens it."""
    base = job_path.parent
    job = json.loads(job_path.read_text())
    rows = []
    for item in job["artifacts"]:
        path = base / item["file"]
        x = np.load(base / item["inputs"])
        for engine in engines_for(format_of(path).name):
            row = {"file": item["file"], "engine": engine}
            if not any(importlib.util.find_spec(m) for m in ENGINES[engine].runtimes):
                rows.append({**row, "status": "not installed there"})
                continue
            try:
                logits, ms = _run_all(path, engine, x, job["threads"])
            except Exception as exc:  # reported in the table, the other rows go on
                rows.append({**row, "status": f"failed: {type(exc).__name__}: {exc}"[:300]})
                continue
            name = f"logits-{len(rows)}.npy"
            np.save(base / name, logits)
            rows.append({**row, "status": "ok", "logits": name,
                         "p50_ms": float(np.percentile(ms, 50)),
                         "p95_ms": float(np.percentile(ms, 95))})
    out = {"machine": platform.machine(), "cpu": cpu_info()["cpu"],
           "python_version": platform.python_version(),
           "torch_loaded": "torch" in sys.modules, "rows": rows}
    (base / RESULTS).write_text(json.dumps(out, indent=2))
    return out


def _stage(folder: Path, faces: list, staging: Path) -> list[dict]:
    items = []
    for i, path in enumerate(sorted(p for p in folder.iterdir() if is_artifact(p))):
        spec = CropSpec.from_dict(read_metadata(path)["crop"])
        for f in artifact_files(path):
            shutil.copy2(f, staging / f.name)
        np.save(staging / f"inputs-{i}.npy", make_inputs(faces, spec))
        items.append({"file": path.name, "inputs": f"inputs-{i}.npy"})
    if (folder / MANIFEST).is_file():
        shutil.copy2(folder / MANIFEST, staging / MANIFEST)
    return items


def measure(folder: Path, faces: list, labels: np.ndarray | None, python: str,
            root: Path | None, threads: int, limit: int = 64) -> dict:
    """Run ``folder``'s artifacts in ``python`` (inside ``root`` when given) and here."""
    from motivnet_edge.edge.packaging import roots as emulated

    faces = faces[:limit]
    labels = None if labels is None else labels[:limit]
    base = (root / "tmp") if root else Path(tempfile.gettempdir())
    staging = Path(tempfile.mkdtemp(prefix="motivnet-bench-", dir=base))
    try:
        items = _stage(folder, faces, staging)
        job = staging / "job.json"
        job.write_text(json.dumps({"artifacts": items, "threads": threads}))
        inside = "/" + job.relative_to(root).as_posix() if root else str(job)
        cmd = [*shlex.split(python), "-m", "motivnet_edge.benchmarks.device_rows", inside]
        with (emulated.proc_mounted(root) if root and not (root / "proc/self").exists()
              else contextlib.nullcontext()):
            done = subprocess.run(emulated.chroot_cmd(root, *cmd) if root else cmd,
                                  capture_output=True, text=True, timeout=3600)
        if done.returncode != 0 or not (staging / RESULTS).is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            return {"error": f"{python} failed (exit {done.returncode}): {tail}", "rows": []}
        there = json.loads((staging / RESULTS).read_text())
        emulated_run = there["machine"] != platform.machine()
        for row in there["rows"]:
            if row["status"] != "ok":
                continue
            theirs = np.load(staging / row.pop("logits"))
            item = next(i for i in items if i["file"] == row["file"])
            ours, _ = _run_all(folder / row["file"], row["engine"],
                               np.load(staging / item["inputs"]), threads)
            row["agreement_with_host"] = float(np.mean(theirs.argmax(1) == ours.argmax(1)))
            row["max_abs_logit_diff"] = float(np.abs(theirs - ours).max())
            if labels is not None:
                row["top1"] = float(np.mean(theirs.argmax(1) == labels))
        return {**there, "emulated": emulated_run, "faces": len(faces),
                "python": python, "root": str(root) if root else None}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def markdown(result: dict) -> str:
    if result.get("error"):
        return f"Device rows: {result['error']}"
    timing = "p50 ms (EMULATED: not a device figure)" if result["emulated"] else "p50 ms"
    lines = [f"Device rows: {result['python']}{' in ' + result['root'] if result['root'] else ''}"
             f", machine {result['machine']} ({result['cpu']}), Python {result['python_version']}, "
             f"{result['faces']} faces" + (", emulated" if result["emulated"] else ""), "",
             f"| artifact | engine | status | top-1 | agreement with this host | {timing} |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        top1 = f"{r['top1']:.4f}" if "top1" in r else ""
        agree = f"{r['agreement_with_host']:.4f}" if "agreement_with_host" in r else ""
        p50 = f"{r['p50_ms']:.3g}" if "p50_ms" in r else ""
        lines.append(f"| {r['file']} | {r['engine']} | {r['status']} | {top1} | {agree} | "
                     f"{p50} |")
    return "\n".join(lines)


if __name__ == "__main__":
    device_side(Path(sys.argv[1]))
