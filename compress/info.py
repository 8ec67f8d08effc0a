"""``motivnet-edge info``: size, parameters, multiply-adds, input, classes and what was loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from motivnet_edge.compress.registry import MOTIVNET_SIZES
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.labels import AFFECTNET7


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge info``."""
    p.add_argument("--model", default="motivnet-tiny", choices=sorted(MOTIVNET_SIZES),
                   help="registered MotivNet size (default: the tiny demo size)")
    p.add_argument("--checkpoint", type=Path,
                   help="MotivNet state dict, Sapiens pretrain checkpoint or TorchScript file")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge info``: a MotivNet size's parameters and MACs, or a checkpoint's keys and
    shapes."""
    from motivnet_edge.compress.models.checkpoints import load_checkpoint
    from motivnet_edge.compress.models.motivnet import build_motivnet, count_macs, crop_spec_for

    spec = crop_spec_for(args.model)
    meta = build_motivnet(args.model, device="meta")
    params = sum(p.numel() for p in meta.parameters())
    macs = count_macs(meta, spec.input_shape)
    loaded = "nothing (random initialisation)"
    if args.checkpoint is not None:
        model = build_motivnet(args.model)
        loaded = load_checkpoint(model, args.checkpoint).describe()
        loaded += f", sha256 {sha256_file(args.checkpoint)[:16]}..."
    rows = [
        ("model", args.model),
        ("parameters", f"{params:,} ({params / 1e9:.3f} B)"),
        ("size fp32", f"{params * 4 / 1e6:,.1f} MB"),
        ("multiply-adds", f"{macs / 1e9:,.2f} G per image"),
        ("input", f"{'x'.join(map(str, spec.input_shape))} {spec.color.upper()}, "
                  f"face resized to {spec.width}x{spec.width}, padded with {spec.pad_value} "
                  f"to {spec.height}x{spec.width}, mean {spec.mean}, std {spec.std}"),
        ("classes", ", ".join(f"{i} {c}" for i, c in enumerate(AFFECTNET7))),
        ("loaded", loaded),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
