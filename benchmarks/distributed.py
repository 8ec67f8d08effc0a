"""Distillation on one process and on N side by side: the teacher pass and the time per step.

    python -m motivnet_edge.benchmarks.distributed --processes 2 --out bench-dist/
    python -m motivnet_edge.benchmarks.distributed --processes 8 --device cuda -- \\
        --teacher motivnet-1b.pth --data faces/ --epochs 1

Runs ``motivnet-edge distil`` (the demo, or the distil arguments after ``--``) once as one
process and once under ``torchrun --standalone --nproc-per-node N`` (gloo on the CPU; NCCL with
``--device cuda``, one GPU per process), each with an empty teacher cache so the teacher pass is
paid, and reads from their logs the seconds the teacher pass took (the slowest rank's share,
plain and mirrored faces) and the seconds per optimizer step (the same global batch, not
counting evaluation). Prints a table with the machine, writes ``distributed.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from motivnet_edge.benchmarks.host import accelerator, cpu_info
from motivnet_edge.targets.files import write_json

TEACHER = re.compile(r"(teacher(?:, mirrored)?)(?:, rank \d+ of \d+)?: computed (\d+) faces in "
                     r"([\d.]+) s")
STEPS = re.compile(r": (\d+) steps in ([\d.]+) s \(not counting evaluation\), ([\d.]+) s per step")


def figures(log: str) -> dict:
    """Teacher-pass seconds (each pass: its slowest rank), faces per rank, seconds per step
    (its slowest rank) from a distil log."""
    passes: dict[str, float] = {}
    shares: list[int] = []
    for desc, n, secs in TEACHER.findall(log):
        passes[desc] = max(passes.get(desc, 0.0), float(secs))
        if desc == "teacher":
            shares.append(int(n))
    steps = STEPS.findall(log)
    return {"teacher_pass_s": round(sum(passes.values()), 3), "faces_per_rank": shares,
            "steps": int(steps[0][0]) if steps else 0,
            "step_s": max((float(s) for _, _, s in steps), default=float("nan"))}


def run(processes: int, device: str, extra: list[str], work: Path) -> dict:
    """One distributed-distillation measurement: the command run, its timings and agreement read
    back."""
    out, cache = work / f"out-{processes}", work / f"cache-{processes}"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(processes)] if processes > 1 else [sys.executable]
    cmd = [*launcher, "-m", "motivnet_edge", "distil", "--out", str(out), "--cache-dir",
           str(cache), "--device", device, "--quiet", *extra]
    print(f"{processes} process(es): {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    (work / f"distil-{processes}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"error: the {processes}-process run failed ({done.returncode}); its log "
                         f"is {work / f'distil-{processes}.log'}")
    return {"processes": processes, "wall_s": round(wall, 1), **figures(done.stderr)}


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.distributed``: the measurement, written as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="folder for distributed.json and the logs")
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.processes < 2:
        p.error("--processes must be at least 2")
    work = args.out or Path(tempfile.mkdtemp(prefix="motivnet-dist-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [run(n, args.device, extra, work) for n in (1, args.processes)]
    one = rows[0]
    print(f"machine: {json.dumps(cpu_info())}, accelerator {accelerator()}")
    print(f"{'processes':>9}  {'teacher pass s':>14}  {'faces per rank':>16}  {'s per step':>10}"
          f"  {'wall s':>7}  {'pass speed-up':>13}  {'step speed-up':>13}")
    for r in rows:
        print(f"{r['processes']:>9}  {r['teacher_pass_s']:>14.2f}  "
              f"{'/'.join(map(str, r['faces_per_rank'])):>16}  {r['step_s']:>10.3f}  "
              f"{r['wall_s']:>7.1f}  {one['teacher_pass_s'] / r['teacher_pass_s']:>13.2f}  "
              f"{one['step_s'] / r['step_s']:>13.2f}")
    write_json(work / "distributed.json", {"machine": cpu_info(), "accelerator": accelerator(),
                                           "device": args.device, "distil_args": extra,
                                           "rows": rows})
    print(f"wrote {work / 'distributed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
