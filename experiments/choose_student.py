"""Pick the default student by measurement: distil each registered student from the same
(cached) teacher outputs, quantise, and compare what it keeps (agreement with the teacher,
INT8 agreement with its own FP32 self) against INT8 latency on this machine. With ``--real``,
INT8 is calibrated on those real face photos and gated on their held-out crops (``compress
--calibration-data``), so the table also says which students keep their INT8 decisions on real
faces. Latencies of all students are measured side by side in interleaved rounds at the end.
Prints a table, writes ``choice.json`` and a plot.

    python -m motivnet_edge.experiments.choose_student --out out/students [--real faces/] \
        [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.benchmarks.host import describe, host_info
from motivnet_edge.benchmarks.measure import engine_runner, time_runners
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.edge.data.synthetic import synth_faces
from motivnet_edge.targets.engine import EngineOptions
from motivnet_edge.targets.formats import format_of, is_artifact
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import FaceImage


def compress(name: str, folder: Path, args: argparse.Namespace) -> float:
    """Run the whole compress chain for one student (at ``--size`` rounded up to a side it
    takes); returns the minutes it took."""
    from motivnet_edge.compress.registry import STUDENTS

    size = STUDENTS[name].side(args.size)
    cmd = [sys.executable, "-m", "motivnet_edge.cli", "compress", "--out", str(folder),
           "--student", name, "--size", str(size), "--epochs", str(args.epochs),
           "--synthetic", str(args.synthetic), "--quiet"]
    if args.real:
        cmd += ["--calibration-data", str(args.real)]
    if args.detector:
        cmd += ["--detector", str(args.detector)]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if not RunFolder(folder).report.is_file():
        print(f"{name}: failed\n{res.stderr[-1500:]}", file=sys.stderr)
    return (time.monotonic() - t0) / 60


def summarise(name: str, folder: Path, minutes: float) -> dict:
    report = json.loads(RunFolder(folder).report.read_text())
    history = json.loads(RunFolder(folder).history.read_text())["history"]
    int8 = {r["format"]: r for r in report["artifacts"].values()
            if r["precision"] == "int8"}
    fp32 = next(r for r in report["artifacts"].values() if r["format"] == "onnx"
                and r["precision"] == "fp32")
    params = read_metadata(folder / fp32["file"])["student"]["parameters"]
    return {"student": name, "params_m": round(params / 1e6, 2), "fp32_mb": fp32["bytes"] / 1e6,
            "int8_mb": int8.get("onnx", {}).get("bytes", 0) / 1e6,
            "agreement_synthetic": history[-1]["agreement"],
            "int8_agreement_with_float": {f: r["agreement_with_float"] for f, r in int8.items()},
            "gate_crops": report["heldout_crops"], "gate_domain": report["calibration_data"],
            "gate": report["passed"], "minutes": round(minutes, 1)}


def latencies(rows: list[dict], out: Path, rounds: int) -> None:
    """Median INT8 latency (batch 1, 2 threads) of every student and engine, interleaved."""
    faces = [FaceImage(synth_faces(1, seed=5)[0].image)]
    runners = {}
    for r in rows:  # a rejected artifact is timed too: its speed does not depend on the gate
        for path in sorted((out / r["student"]).iterdir()):
            if not is_artifact(path) or read_metadata(path)["precision"] == "fp32":
                continue
            engine = format_of(path).engine
            runners[r["student"], engine] = engine_runner(
                path, engine, EngineOptions(threads=2), check=False).open()
    times = time_runners(runners, faces, rounds, 10, batch8=False)
    for r in rows:
        r["latency_ms"] = {engine: round(times[(r["student"], engine)].p50, 3)
                           for s, engine in times if s == r["student"]}
    for runner in runners.values():
        runner.close()


def plot(rows: list[dict], path: Path, gate: float = 0.99) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, r in enumerate(rows):
        ms = r["latency_ms"].get("onnxruntime", 0)
        worst = min(r["int8_agreement_with_float"].values(), default=0)
        ax.scatter(ms, worst, s=30 + 12 * r["int8_mb"], alpha=0.7)
        ax.annotate(f"{r['student']}\n{r['int8_mb']:.1f} MB, teacher agr. "
                    f"{r['agreement_synthetic']:.2f}", (ms, worst), fontsize=7,
                    xytext=(6, -14 if i % 2 else 6), textcoords="offset points")
    ax.axhline(gate, ls="--", c="grey", lw=1)
    ax.set_xlabel("INT8 latency, ONNX Runtime, batch 1, 2 threads (ms, this machine)")
    ax.set_ylabel(f"worst INT8 agreement with its FP32 self ({rows[0]['gate_crops']} crops)"
                  if rows else "worst INT8 agreement")
    ax.set_title("students: speed vs what INT8 keeps (dashed: the gate)", pad=16)
    save(fig, path, bbox_inches="tight")


def main() -> int:
    """The measurement that chose the demo's student: each candidate compressed and scored, the
    table printed."""
    from motivnet_edge.compress.models.students import STUDENTS

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/students"))
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--synthetic", type=int, default=2400)
    ap.add_argument("--real", type=Path, help="real face photos: INT8 calibrated and gated on them")
    ap.add_argument("--detector", type=Path, help="YuNet .onnx for finding the faces")
    ap.add_argument("--rounds", type=int, default=30, help="latency rounds")
    ap.add_argument("--reuse", action="store_true", help="keep finished students' folders")
    args = ap.parse_args()
    rows = []
    for name in args.students.split(","):
        folder = args.out / name
        minutes = 0.0
        if not (args.reuse and RunFolder(folder).report.is_file()):
            minutes = compress(name, folder, args)
        if RunFolder(folder).report.is_file():
            rows.append(summarise(name, folder, minutes))
            print(json.dumps(rows[-1]), flush=True)
    latencies(rows, args.out, args.rounds)
    print(f"\nhost: {describe(host_info())}")
    print(f"\n{'student':<24}{'agr synth':>10}{'INT8 MB':>8}{'ort ms':>8}{'ov ms':>7}{'tfl ms':>8}"
          f"  INT8 agreement with FP32 on {rows[0]['gate_crops'] if rows else 0} held-out crops")
    for r in rows:
        lat, agr = r["latency_ms"], r["int8_agreement_with_float"]
        print(f"{r['student']:<24}{r['agreement_synthetic']:>10.4f}{r['int8_mb']:>8.2f}"
              f"{lat.get('onnxruntime', 0):>8.3f}{lat.get('openvino', 0):>7.3f}"
              f"{lat.get('litert', 0):>8.3f}  "
              + " ".join(f"{k} {v:.3f}" for k, v in sorted(agr.items()))
              + ("" if r["gate"] else "  (gate FAILED)"))
    (args.out / "choice.json").write_text(json.dumps(rows, indent=2))
    plot(rows, args.out / "choice.png")
    print(f"\nwrote {args.out / 'choice.json'} and {args.out / 'choice.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
