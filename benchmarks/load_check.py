"""What an artifact's self-check costs at load: the content digest (one sha256 over its files
with the metadata blob taken out) beside reading the metadata and loading the engine.

    python -m motivnet_edge.benchmarks.load_check [FILE ...]   # default: the shipped model

Prints one row per file with the machine, medians of ``--repeat`` runs; the ratio is the
check's share of a whole engine load measured side by side in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from motivnet_edge.benchmarks.host import describe, host_info
from motivnet_edge.edge.shipped import default_model
from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.formats import format_of
from motivnet_edge.targets.metadata import artifact_bytes, content_digest, read_metadata

ENGINE = {"onnx": "onnxruntime", "tflite": "litert", "openvino": "openvino"}


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def row(path: Path, repeat: int) -> str:
    fmt = format_of(path)
    text = fmt.codec().read(path)
    digest = median_ms(lambda: content_digest(path, text), repeat)
    meta = median_ms(lambda: read_metadata(path), repeat)
    load = median_ms(lambda: load_engine(path, ENGINE[fmt.name]).close(), max(3, repeat // 3))
    return (f"| {path.name} | {artifact_bytes(path):,} | {digest:.2f} | {meta:.2f} | "
            f"{load:.1f} | {digest / load:.3f} |")


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.load_check``: the self-check's share of each format's
    load time, printed and written."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
    files = args.files or sorted(default_model().glob("student-int8.*"))
    print(f"machine: {describe(host_info())}")
    print("| file | bytes | digest ms | read_metadata ms (with digest) | engine load ms | "
          "digest / load |")
    print("|---|---|---|---|---|---|")
    for path in files:
        print(row(path, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
