"""Pick the default student by measurement: distil each registered student from the same
(cached) teacher outputs, quantise, and compare agreement with the teacher against INT8
latency on this machine. Prints a table and writes a plot.

    python -m benchmarks.choose_student --out out/students --epochs 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.preprocess import make_input
from edge.synthetic import synth_faces
from targets.engine import EngineOptions, load_engine


def int8_latency_ms(folder: Path, rounds: int = 200) -> dict[str, float]:
    x_crop = synth_faces(1, seed=5)[0].image
    out = {}
    for name, engine in (("student-int8.onnx", "onnxruntime"), ("student-int8.xml", "openvino"),
                         ("student-int8.tflite", "litert")):
        path = folder / name
        if not path.is_file():
            continue
        with load_engine(path, engine, EngineOptions(threads=2)) as eng:
            x = make_input(x_crop, None, eng.crop)[None]
            for _ in range(10):
                eng.run(x)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                eng.run(x)
                times.append((time.perf_counter() - t0) * 1e3)
        out[engine] = float(np.median(times))
    return out


def real_agreement(folder: Path, real: list[np.ndarray]) -> dict[str, float]:
    """INT8 artifacts against their own FP32 student on real face crops."""
    from compress.stages import load_work
    from compress.train import predict
    from compress.validate import compare, run_artifact

    work = load_work(folder)
    float_logits = predict(work.model, real, work.spec)
    out = {}
    for name in ("student-int8.onnx", "student-int8.xml", "student-int8.tflite",
                 "student-int8.rejected.onnx", "student-int8.rejected.xml",
                 "student-int8.rejected.tflite"):
        if (folder / name).is_file():
            logits, _ = run_artifact(folder / name, real, check=False)
            out[name.split(".")[-1]] = compare(logits, float_logits, None, None)[
                "agreement_with_float"]
    return out


def main() -> int:
    from compress.students import STUDENTS

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("out/students"))
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--synthetic", type=int, default=2400)
    ap.add_argument("--real", type=Path, help="real face photos for an INT8 check off-domain")
    ap.add_argument("--detector", type=Path, help="YuNet .onnx for the real photos")
    args = ap.parse_args()
    real = []
    if args.real:
        from compress.data import collect
        from edge.detect import FaceDetector

        real = collect([args.real], detector=FaceDetector(args.detector), progress=False).crops
    rows = []
    for name in args.students.split(","):
        folder = args.out / name
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "edge.cli", "compress", "--out", str(folder),
                              "--student", name, "--size", str(args.size), "--epochs",
                              str(args.epochs), "--synthetic", str(args.synthetic), "--quiet"],
                             capture_output=True, text=True)
        took = time.monotonic() - t0
        if not (folder / "report.json").is_file():
            print(f"{name}: failed\n{res.stderr[-1500:]}", file=sys.stderr)
            continue
        report = json.loads((folder / "report.json").read_text())
        int8 = {r["format"]: r for r in report["artifacts"].values()
                if r["precision"] == "int8"}
        lat = int8_latency_ms(folder)
        rows.append({"student": name, "agreement_fp32": report["student"]["agreement_with_teacher"],
                     "agreement_int8_onnx": int8.get("onnx", {}).get("agreement_with_teacher"),
                     "int8_mb": int8.get("onnx", {}).get("bytes", 0) / 1e6,
                     "latency_ms": lat, "gate": report["passed"], "minutes": took / 60,
                     "real_int8_agreement": real_agreement(folder, real) if real else {}})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'student':<26}{'agr fp32':>9}{'agr int8':>9}{'MB':>6}{'ort ms':>8}{'ov ms':>7}"
          f"{'tfl ms':>8}{'gate':>6}  real-crop INT8 agreement")
    for r in rows:
        lat = r["latency_ms"]
        print(f"{r['student']:<26}{r['agreement_fp32']:>9.4f}{r['agreement_int8_onnx'] or 0:>9.4f}"
              f"{r['int8_mb']:>6.2f}{lat.get('onnxruntime', 0):>8.3f}"
              f"{lat.get('openvino', 0):>7.3f}{lat.get('litert', 0):>8.3f}"
              f"{'ok' if r['gate'] else 'FAIL':>6}  "
              + " ".join(f"{k} {v:.3f}" for k, v in r["real_int8_agreement"].items()))
    (args.out / "choice.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
