"""MotivNet itself as a benchmark row: a checkpoint (the teacher of the demo, or a real
MotivNet.pth), or the real architecture with random weights when only its speed is asked for
(``--full-model motivnet-1b --speed-only``), on the best device here: CUDA in bf16 when a GPU is
present; on a CPU in fp32, and in bf16 too where the CPU has native bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.measure import Runner
from motivnet_edge.benchmarks.rows import Row
from motivnet_edge.targets.labels import AFFECTNET7


def precisions(bf16_native: bool, cuda: bool) -> list[tuple[str, str]]:
    """(device, precision) pairs to measure the full model in."""
    if cuda:
        return [("cuda", "bf16")]
    return [("cpu", "fp32")] + ([("cpu", "bf16")] if bf16_native else [])


def motivnet_rows(size: str, checkpoint: Path | None, bf16_native: bool, threads: int,
                  name: str | None = None, kind: str = "full-model") -> list[Row]:
    import torch

    from motivnet_edge.compress.models.motivnet import build_motivnet, crop_spec_for

    cuda = torch.cuda.is_available()
    rows = []
    for device, precision in precisions(bf16_native, cuda):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        row = Row(name or size, kind, f"torch {torch.__version__}", device, precision,
                  checkpoint.name if checkpoint else "", None, speed_only=checkpoint is None)
        state: dict = {}

        def load(device=device, dtype=dtype, state=state) -> None:
            torch.set_num_threads(threads)
            model = build_motivnet(size, device="meta")
            model = model.to_empty(device=device)
            if checkpoint is None:  # speed only: any values will do
                with torch.no_grad():
                    for p in model.parameters():
                        p.normal_(0.0, 0.02)
            else:
                from motivnet_edge.compress.models.checkpoints import load_checkpoint

                load_checkpoint(model, checkpoint)
            state["model"] = model.to(device, dtype).eval()

        def predict(batch: np.ndarray, device=device, dtype=dtype, state=state) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(batch).to(device, dtype)
                return state["model"](x).float().cpu().numpy()

        row.runner = Runner(load=load, spec=crop_spec_for(size), labels=AFFECTNET7,
                            predict=predict, settings={"threads": threads, "dtype": precision})
        if checkpoint is not None:
            row.bytes = checkpoint.stat().st_size
        rows.append(row)
    return rows
