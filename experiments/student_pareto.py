"""The student's input side and family on the Pareto: every point distilled by one recipe (the
patient preset, ``--epochs`` each) from the same teacher and photos, scored by the selection
rule (top-1 agreement with the teacher on the select half of the held-out faces, ties by KL;
docs/patient.md), and its INT8 ONNX file timed beside the others' in interleaved rounds. Prints
a table, writes ``pareto.json`` and ``pareto.png`` (agreement against INT8 latency, the front
drawn). A point already distilled is kept; a stopped one goes on from its checkpoint.

    python -m motivnet_edge.experiments.student_pareto --out out/pareto \\
        --teacher fer.onnx --teacher-spec fer-mobilefacenet --teacher-engine openvino \\
        --data faces-unlabelled/images --epochs 5 \\
        --points efficientnet_lite0:96,efficientnet_lite0:112,efficientnet_lite0:128

The INT8 file of a point is quantised after training without fine-tuning (``--qat-steps 0``):
it is there to be timed (speed does not depend on the weights); the agreement the table ranks
by is the float student's, as every recipe decision reads it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from motivnet_edge.benchmarks.agreement import held_out
from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.benchmarks.host import describe, host_info
from motivnet_edge.benchmarks.measure import engine_runner, time_runners
from motivnet_edge.benchmarks.pareto import pareto_front, place_labels
from motivnet_edge.compress.distil.selection import kept_prefix, kept_weights
from motivnet_edge.compress.inference import quantize_results
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.engine import EngineOptions
from motivnet_edge.targets.files import write_json
from motivnet_edge.targets.formats import artifact_name

ENGINES = ("onnxruntime", "openvino")


def _cli(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    cmd = [sys.executable, "-m", "motivnet_edge.cli", *args]
    print("$ motivnet-edge " + " ".join(args), flush=True)
    if subprocess.run(cmd).returncode not in ok:
        raise SystemExit(f"failed: {' '.join(cmd)}")


def point_folder(out: Path, student: str, size: int) -> Path:
    return out / f"{student}-{size}"


def int8_file(folder: Path) -> Path:
    """The point's INT8 ONNX file as the quantize stage recorded it, passed or rejected by the
    gate (its speed is the same)."""
    return folder / quantize_results(folder)["onnx"]["file"]


def make_point(student: str, size: int, folder: Path, args: argparse.Namespace) -> float:
    """Distil (or go on distilling) one point, then export and quantise it; minutes taken."""
    run = RunFolder(folder)
    t0 = time.monotonic()
    if not run.history.is_file():
        _cli("distil", "--out", str(folder), "--preset", "patient", "--epochs", str(args.epochs),
             "--student", student, "--size", str(size), "--student-weights", args.weights,
             "--teacher", str(args.teacher),
             "--teacher-spec", args.teacher_spec, "--teacher-engine", args.teacher_engine,
             "--data", str(args.data), *(["--resume"] if run.checkpoint.is_file() else []))
    if "onnx" not in quantize_results(folder):
        _cli("export", "--out", str(folder))
        # 1: the gate rejected the file, which is still written under its rejected name
        _cli("quantize", "--out", str(folder), "--formats", "onnx", "--qat-steps", "0", ok=(0, 1))
    return (time.monotonic() - t0) / 60


def figures(student: str, size: int, folder: Path, minutes: float) -> dict:
    """The point's last epoch by the selection rule: the weights the run kept, their select
    and untouched figures."""
    history = json.loads(RunFolder(folder).history.read_text())["history"]
    last = history[-1]
    pre = kept_prefix(last)
    row = {"student": student, "size": size, "epochs": last["epoch"],
           "weights": kept_weights(last),
           "train_s": round(sum(e["seconds"] for e in history)), "minutes_here": round(minutes, 1)}
    for key in ("select_agreement", "select_kl", "select_rare_agreement",
                "untouched_agreement", "untouched_kl", "untouched_rare_agreement"):
        row[key] = round(last[pre + key], 4)
    row["int8_bytes"] = int8_file(folder).stat().st_size
    return row


def latencies(rows: list[dict], out: Path, rounds: int) -> None:
    """Median batch-1 latency of every point's INT8 (and FP32) ONNX file per engine, one
    thread, interleaved round by round, on a held-out face of the first point (aligned
    students need its landmarks)."""
    faces = held_out(point_folder(out, rows[0]["student"], rows[0]["size"]))["faces"][:1]
    runners = {}
    for r in rows:
        folder = point_folder(out, r["student"], r["size"])
        files = {"int8": int8_file(folder),
                 "fp32": folder / artifact_name("student", "fp32", "onnx")}
        for precision, path in files.items():
            for engine in ENGINES:
                runners[r["student"], r["size"], precision, engine] = engine_runner(
                    path, engine, EngineOptions(threads=1), check=False).open()
    times = time_runners(runners, faces, rounds, 10, batch8=False)
    for r in rows:
        r["latency_ms"] = {f"{precision}_{engine}": round(t.p50, 3)
                           for (s, size, precision, engine), t in times.items()
                           if (s, size) == (r["student"], r["size"])}
    for runner in runners.values():
        runner.close()


def plot(rows: list[dict], path: Path, host: str, epochs: int, title: str = "") -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, marker, name in (("int8_onnxruntime", "o", "ONNX Runtime"),
                              ("int8_openvino", "s", "OpenVINO")):
        pts = [(r["latency_ms"][key], r["select_agreement"]) for r in rows]
        ax.scatter(*zip(*pts, strict=True), marker=marker, label=f"select half, INT8 {name}")
        ax.plot(*zip(*pareto_front(pts), strict=True), lw=1, alpha=0.5)
    ort = [r["latency_ms"]["int8_onnxruntime"] for r in rows]
    ax.scatter(ort, [r["untouched_agreement"] for r in rows], marker="x", c="grey",
               label="untouched half (no decision reads it), ONNX Runtime")
    labels = [(f"{r['student']}\n{r['size']} px", x, r["select_agreement"])
              for r, x in zip(rows, ort, strict=True)]
    for i in place_labels(ax, labels):  # no free place: beside its point all the same
        ax.annotate(labels[i][0], labels[i][1:], fontsize=6, xytext=(5, 4),
                    textcoords="offset points")
    ax.set_xlabel(f"INT8 latency per face, batch 1, 1 thread (ms): {host}", fontsize=8)
    ax.set_ylabel("top-1 agreement with the teacher (float student)")
    ax.set_title(title or f"students at {epochs} epochs of the patient recipe: agreement "
                 "against latency (lines: the front)", fontsize=9)
    ax.legend(fontsize=8)
    save(fig, path, bbox_inches="tight")


def _table(rows: list[dict]) -> str:
    head = ("| student | side | select agreement | select KL | select rare | untouched "
            "agreement | untouched rare | INT8 ms ORT | INT8 ms OpenVINO | FP32 ms ORT | "
            "INT8 MB | train min |\n" + "|---" * 12 + "|")
    lines = [head]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['student']} | {r['size']} | {r['select_agreement']:.4f} | "
            f"{r['select_kl']:.3f} | {r['select_rare_agreement']:.3f} | "
            f"{r['untouched_agreement']:.4f} | {r['untouched_rare_agreement']:.3f} | "
            f"{lat['int8_onnxruntime']:.3f} | {lat['int8_openvino']:.3f} | "
            f"{lat['fp32_onnxruntime']:.3f} | {r['int8_bytes'] / 1e6:.2f} | "
            f"{r['train_s'] / 60:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Every point made (or kept), timed side by side, tabled and plotted."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/pareto"))
    ap.add_argument("--points", default="efficientnet_lite0:96,efficientnet_lite0:112,"
                                        "efficientnet_lite0:128",
                    help="student:side, comma-separated")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--teacher-spec", required=True)
    ap.add_argument("--teacher-engine", default="openvino")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", default="imagenet",
                    help="every student's start: imagenet (a student without ImageNet weights "
                         "installed is refused by distil) or a local state dict")
    ap.add_argument("--rounds", type=int, default=30, help="latency rounds")
    ap.add_argument("--title", default="", help="the plot's title (default: the students at "
                                                "--epochs of the patient recipe)")
    args = ap.parse_args(argv)
    points = []
    for point in args.points.split(","):
        student, _, side = point.partition(":")
        if not student or not side.isdigit():
            ap.error(f"--points: {point!r} is not STUDENT:SIDE (e.g. efficientnet_lite0:112)")
        points.append((student, int(side)))
    rows = []
    for student, side in points:
        folder = point_folder(args.out, student, side)
        minutes = make_point(student, side, folder, args)
        rows.append(figures(student, side, folder, minutes))
        print(json.dumps(rows[-1]), flush=True)
    latencies(rows, args.out, args.rounds)
    host = describe(host_info())
    print(f"\nhost: {host}\n\n{_table(rows)}")
    write_json(args.out / "pareto.json", {"host": host, "epochs": args.epochs, "rows": rows})
    plot(rows, args.out / "pareto.png", host, args.epochs, args.title)
    print(f"\nwrote {args.out / 'pareto.json'} and {args.out / 'pareto.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
