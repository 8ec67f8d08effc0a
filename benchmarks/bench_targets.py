"""Compare every artifact of a compress output folder in every engine that runs it here: latency
at batch 1 (1 and 2 threads, measured side by side in interleaved rounds), size, and top-1
agreement with the FP32 student, each measured in that engine on the folder's held-out crops
(or on ``--faces``, real photos cropped by the device's own detector); optionally the full
MotivNet-1B for scale. Prints one table and writes a latency-vs-agreement plot. No torch is
needed unless ``--full-model`` is given.

    python -m motivnet_edge.benchmarks.bench_targets --artifacts out/demo [--faces photos/] \
        [--full-model]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from motivnet_edge.targets.engine import EngineOptions, engines_for, load_engine
from motivnet_edge.targets.formats import artifact_name, format_of, is_artifact
from motivnet_edge.targets.metadata import artifact_bytes
from motivnet_edge.targets.preprocess import make_inputs


def measure(engines: dict, inputs: dict, rounds: int, per_round: int) -> dict[str, list]:
    times: dict[str, list] = {k: [] for k in engines}
    for _ in range(rounds):  # interleaved, so background noise hits every engine alike
        for key, eng in engines.items():
            x = inputs[key]
            for _ in range(per_round):
                t0 = time.perf_counter()
                eng.run(x)
                times[key].append((time.perf_counter() - t0) * 1e3)
    return times


def heldout_crops(folder: Path) -> list[np.ndarray]:
    """The gate's held-out crops of a compress folder (its calibration domain when given)."""
    from motivnet_edge.compress.data import CropSet, gate_files, split_index

    run = json.loads((folder / "work" / "run.json").read_text())
    crops = CropSet.load(gate_files(folder / "work", bool(run.get("calibration_data")))[0])
    _, val = split_index(crops.hashes, run["val_fraction"])
    return [crops.crops[i] for i in val]


def logits(engine, crops: list[np.ndarray], batch: int = 32) -> np.ndarray:
    return np.concatenate([engine.run(make_inputs(crops[i:i + batch], engine.crop))
                           for i in range(0, len(crops), batch)])


def full_model_ms() -> tuple[float, float]:
    """CPU latency (ms) and multiply-adds (G) of MotivNet-1B, random weights, one image."""
    import torch

    from motivnet_edge.compress.motivnet import build_motivnet, count_macs, crop_spec_for

    model = build_motivnet("motivnet-1b").eval()
    x = torch.zeros(crop_spec_for("motivnet-1b").input_shape)
    with torch.no_grad():
        t0 = time.perf_counter()
        model(x)
    ms = (time.perf_counter() - t0) * 1e3
    return ms, count_macs(build_motivnet("motivnet-1b", device="meta"), tuple(x.shape)) / 1e9


def plot(rows: list[tuple], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, engine, threads, ms, _, mb, agree, _ in rows:
        ax.scatter(ms, agree, s=20 + 8 * mb, marker="o" if threads == 2 else "x")
        ax.annotate(f"{name.removeprefix('student-')}/{engine}/{threads}t", (ms, agree),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("median latency, batch 1 (ms, this machine); o = 2 threads, x = 1")
    ax.set_ylabel("top-1 agreement with the FP32 student (held-out, in that engine)")
    ax.set_title("motivnet-edge artifacts: latency vs agreement")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, default=Path("out/demo"))
    ap.add_argument("--faces", type=Path, help="face photos to measure agreement on")
    ap.add_argument("--detector", type=Path, help="YuNet .onnx for --faces")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--full-model", action="store_true",
                    help="also time MotivNet-1B on this CPU (needs torch; tens of seconds)")
    ap.add_argument("--plot", type=Path, default=Path("out/bench-targets.png"))
    args = ap.parse_args()
    if args.faces:
        from motivnet_edge.compress.data import collect
        from motivnet_edge.edge.detect import FaceDetector

        crops = collect([args.faces], detector=FaceDetector(args.detector), progress=False).crops
    else:
        crops = heldout_crops(args.artifacts)
    with load_engine(args.artifacts / artifact_name("student", "fp32", "onnx"),
                     "onnxruntime") as ref:
        reference = logits(ref, crops).argmax(1)
    engines, inputs, meta, agreement = {}, {}, {}, {}
    for path in sorted(args.artifacts.iterdir()):
        if not is_artifact(path):
            continue
        for engine in engines_for(format_of(path).name):
            for threads in (1, 2):
                key = f"{path.name} {engine} {threads}t"
                eng = load_engine(path, engine, EngineOptions(threads=threads))
                if (path.name, engine) not in agreement:
                    agreement[path.name, engine] = float(np.mean(logits(eng, crops).argmax(1)
                                                                 == reference))
                inputs[key] = make_inputs(crops[:1], eng.crop)
                engines[key] = eng
                meta[key] = (path.name, engine, threads, artifact_bytes(path) / 1e6,
                             eng.metadata["precision"])
    times = measure(engines, inputs, args.rounds, args.per_round)
    med = {k: float(np.median(v)) for k, v in times.items()}
    best = min(med.values())
    rows = []
    for key, ms in sorted(med.items(), key=lambda kv: kv[1]):
        name, engine, threads, mb, prec = meta[key]
        rows.append((name, engine, threads, ms, ms / best, mb, agreement[name, engine], prec))
    print(f"{'artifact':<30}{'engine':<12}{'thr':>4}{'p50 ms':>9}{'x best':>8}{'MB':>7}"
          f"{'agreement':>11}  precision")
    for name, engine, threads, ms, ratio, mb, agree, prec in rows:
        print(f"{name:<30}{engine:<12}{threads:>4}{ms:>9.3f}{ratio:>8.2f}{mb:>7.2f}"
              f"{agree:>11.4f}  {prec}")
    print(f"\nagreement: top-1 with the FP32 ONNX student in ONNX Runtime, on {len(crops)} "
          f"{'crops of ' + str(args.faces) if args.faces else 'held-out crops'}")
    if args.full_model:
        ms, gmacs = full_model_ms()
        print(f"MotivNet-1B on this CPU: {ms / 1e3:.1f} s per image ({gmacs:,.0f} GMAC) = "
              f"{ms / rows[0][3]:,.0f}x the fastest artifact")
    plot(rows, args.plot)
    print(f"plot: {args.plot}")
    for eng in engines.values():
        eng.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
