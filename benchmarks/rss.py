"""Peak memory of a fresh process that loads one artifact and runs it: what a device pays to
keep the model resident. ``python -m motivnet_edge.benchmarks.rss FILE ENGINE DEVICE THREADS``
prints the peak RSS in MB."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np

from motivnet_edge.edge.procstat import status_mb


def measure_rss(rows, threads: int) -> None:
    """Peak RSS of a fresh interpreter per artifact row (other rows: not measured)."""
    for row in rows:
        if row.runner is None or not row.file or row.kind != "artifact" or row.simulated:
            continue
        res = subprocess.run([sys.executable, "-m", "motivnet_edge.benchmarks.rss",
                              row.runner.path, row.engine, row.device, str(threads)],
                             capture_output=True, text=True, timeout=300)
        try:
            row.results["rss_mb"] = json.loads(res.stdout.strip().splitlines()[-1])["rss_mb"]
        except (ValueError, IndexError, KeyError):
            row.results["rss_error"] = res.stderr[-300:]


def main(argv: list[str]) -> int:
    """In a fresh process: one artifact loaded and run 20 times; its peak RSS printed as JSON."""
    from motivnet_edge.targets.engine import EngineOptions, load_engine

    path, engine, device, threads = argv
    with load_engine(path, engine, EngineOptions(device=device, threads=int(threads))) as eng:
        x = np.zeros((1, *eng.crop.input_shape[1:]), eng.crop.dtype)
        for _ in range(20):
            eng.run(x)
    print(json.dumps({"rss_mb": round(peak_rss_mb(), 1)}))
    return 0


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM, which starts afresh at exec; ``ru_maxrss`` does
    not (it keeps the parent's peak at fork, so a child of a big benchmark process would report
    the parent's memory), so it is only the fallback where there is no procfs."""
    peak = status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
