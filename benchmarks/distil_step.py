"""Where a consistent-distillation step's time goes, on a distil run's own faces: cutting the
augmented views (student's and teacher's), running the teacher on them, and the student's
forward and backward pass in float32 and under bf16 autocast (oneDNN's AMX or AVX-512 BF16
kernels where the CPU has them). Prints the CPU beside every figure.

    python -m motivnet_edge.benchmarks.distil_step --out OUT --steps 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _time(fn, steps: int) -> float:
    fn()  # warm-up (oneDNN picks its kernels on the first call)
    began = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - began) / steps


def measure(out: Path, steps: int, batch: int) -> dict:
    import torch

    from motivnet_edge.compress.distil.augment import training_views
    from motivnet_edge.compress.distil.data import CropSet
    from motivnet_edge.compress.distil.train import distillation_loss
    from motivnet_edge.compress.inference import channels_last
    from motivnet_edge.compress.models.students import build_student, student_spec
    from motivnet_edge.compress.models.teachers import reload_teacher
    from motivnet_edge.compress.runfolder import RunFolder
    from motivnet_edge.targets.preprocess import normalize_batch

    folder = RunFolder(out)
    run = folder.read_record()
    teacher = reload_teacher(run.teacher)
    crops = CropSet.load(folder.faces(calibrated=False)[0]).crops[:batch]
    spec = student_spec(run.student.name, run.student.size, run.margin, teacher.crop)
    cfg = run.train
    rng = np.random.default_rng(0)
    views = training_views(crops, (spec, teacher.crop), rng, cfg)
    model = build_student(run.student.name, len(run.classes), run.student.size, None)
    model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = channels_last(normalize_batch(views[0], spec))
    target = torch.from_numpy(teacher.predict_cut(views[1]))
    labels = torch.full((len(crops),), -1)

    def student(bf16: bool):
        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = model(x).float()
            loss = distillation_loss(y, target, labels, cfg.temperature, cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    return {"batch": len(crops), "threads": torch.get_num_threads(),
            "views_s": _time(lambda: training_views(crops, (spec, teacher.crop), rng, cfg),
                             steps),
            "teacher_s": _time(lambda: teacher.predict_cut(views[1]), steps),
            "student_fp32_s": _time(student(False), steps),
            "student_bf16_s": _time(student(True), steps)}


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.distil_step``: a step's parts timed on a run's
    faces, printed as JSON with the CPU."""
    from motivnet_edge.benchmarks.host import cpu_info

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    figures = measure(args.out, args.steps, args.batch)
    print(json.dumps({"cpu": cpu_info(), **figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
