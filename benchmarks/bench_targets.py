"""Compare every artifact of a compress output folder in every engine that runs it here: latency
at batch 1 (1 and 2 threads, measured side by side in interleaved rounds), size, and accuracy
figures from report.json; plus the teacher and the full MotivNet-1B for scale. Prints one
table and writes a latency-vs-agreement plot.

    python -m benchmarks.bench_targets --artifacts out/demo [--plot bench.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge.synthetic import synth_faces
from targets.engine import EngineOptions, load_engine

RUNS = {".onnx": ["onnxruntime", "openvino"], ".xml": ["openvino"], ".tflite": ["litert"]}


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


def teacher_ms(n: int = 5) -> dict[str, float]:
    """CPU latency of the demo teacher and of MotivNet-1B (one image, random weights)."""
    import torch

    from compress.motivnet import build_motivnet, count_macs, crop_spec_for

    out = {}
    for name, reps in (("motivnet-tiny", n), ("motivnet-1b", 1)):
        model = build_motivnet(name).eval()
        x = torch.zeros(crop_spec_for(name).input_shape)
        with torch.no_grad():
            model(x)
            t0 = time.perf_counter()
            for _ in range(reps):
                model(x)
        out[name] = (time.perf_counter() - t0) / reps * 1e3
        out[name + "/gmacs"] = count_macs(build_motivnet(name, device="meta"),
                                          tuple(x.shape)) / 1e9
        del model
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", type=Path, default=Path("out/demo"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--full-model", action="store_true",
                    help="also time MotivNet-1B on this CPU (slow: tens of seconds)")
    ap.add_argument("--plot", type=Path, default=Path("out/bench-targets.png"))
    args = ap.parse_args()
    report = json.loads((args.artifacts / "report.json").read_text())
    crops = [f.image for f in synth_faces(4, seed=99)]
    engines, inputs, meta = {}, {}, {}
    for path in sorted(args.artifacts.iterdir()):
        if path.suffix not in RUNS or ".rejected" in path.name or path.name.startswith("."):
            continue
        for engine in RUNS[path.suffix]:
            for threads in (1, 2):
                key = f"{path.name} {engine} {threads}t"
                eng = load_engine(path, engine, EngineOptions(threads=threads))
                from edge.preprocess import make_input

                inputs[key] = make_input(crops[0], None, eng.crop)[None]
                engines[key] = eng
                meta[key] = (path.name, engine, threads)
    times = measure(engines, inputs, args.rounds, args.per_round)
    med = {k: float(np.median(v)) for k, v in times.items()}
    best = min(med.values())
    rows = []
    for key, ms in sorted(med.items(), key=lambda kv: kv[1]):
        name, engine, threads = meta[key]
        r = report["artifacts"].get(name, {})
        rows.append((name, engine, threads, ms, ms / best, r.get("bytes", 0) / 1e6,
                     r.get("agreement_with_float", float("nan")),
                     r.get("agreement_with_teacher", float("nan")), r.get("precision", "")))
    print(f"{'artifact':<22}{'engine':<12}{'thr':>4}{'p50 ms':>9}{'x best':>8}{'MB':>7}"
          f"{'agr/float':>10}{'agr/teacher':>12}  precision")
    for row in rows:
        print(f"{row[0]:<22}{row[1]:<12}{row[2]:>4}{row[3]:>9.3f}{row[4]:>8.2f}{row[5]:>7.2f}"
              f"{row[6]:>10.4f}{row[7]:>12.4f}  {row[8]}")
    if args.full_model:
        t = teacher_ms()
        print(f"\nteacher motivnet-tiny: {t['motivnet-tiny']:.1f} ms "
              f"({t['motivnet-tiny/gmacs']:.2f} GMAC); MotivNet-1B on this CPU: "
              f"{t['motivnet-1b'] / 1e3:.1f} s ({t['motivnet-1b/gmacs']:.0f} GMAC) = "
              f"{t['motivnet-1b'] / rows[0][3]:,.0f}x the best artifact")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        for row in rows:
            ax.scatter(row[3], row[7], s=30 + 20 * row[5])
            ax.annotate(f"{row[0].split('.')[-1]}/{row[1]}/{row[2]}t {row[8]}",
                        (row[3], row[7]), fontsize=7)
        ax.set_xlabel("median latency, batch 1 (ms, this machine)")
        ax.set_ylabel("top-1 agreement with the teacher (held-out)")
        ax.set_title("motivnet-edge targets: latency vs agreement")
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
        print(f"\nplot: {args.plot}")
    except ImportError:
        pass
    for eng in engines.values():
        eng.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
