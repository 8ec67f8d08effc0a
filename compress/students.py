"""Students: small timm classifiers registered by name, each with its input size and crop spec."""

from __future__ import annotations

from pathlib import Path

import torch

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec

# name -> timm model name and keyword arguments; every student takes a square RGB input.
STUDENTS: dict[str, dict] = {
    "mobilenetv4_conv_small": {"timm": "mobilenetv4_conv_small"},
    "mobilenetv3_large_100": {"timm": "mobilenetv3_large_100"},
    "mobilenetv3_small_100": {"timm": "mobilenetv3_small_100"},
    "efficientnet_lite0": {"timm": "efficientnet_lite0"},
    "resnet18": {"timm": "resnet18"},
    # a small ViT for comparison: ViT-Tiny's width, 6 layers, patch 16
    "vit_small6": {"timm": "vit_tiny_patch16_224", "kwargs": {"depth": 6}, "vit": True},
}
DEFAULT_STUDENT = "mobilenetv4_conv_small"
DEFAULT_SIZE = 112


def student_spec(size: int, margin: float) -> CropSpec:
    """ImageNet normalisation, RGB, NCHW, square resize."""
    return CropSpec(height=size, width=size, margin=margin, resize="square", color="rgb")


def build_student(name: str, num_classes: int, size: int,
                  weights: Path | None = None) -> torch.nn.Module:
    """A registered student; ``weights`` is a local ImageNet weights file (timm's format), else
    the student starts from scratch (no download is ever attempted)."""
    import timm

    if name not in STUDENTS:
        raise MotivnetError(f"unknown student {name!r}; registered: {sorted(STUDENTS)}")
    entry = STUDENTS[name]
    kwargs = dict(entry.get("kwargs", {}))
    if entry.get("vit"):
        kwargs["img_size"] = size
    if weights is not None:
        if not Path(weights).is_file():
            raise MotivnetError(f"student weights {weights} do not exist")
        try:
            return timm.create_model(entry["timm"], pretrained=True, num_classes=num_classes,
                                     pretrained_cfg_overlay={"file": str(weights)}, **kwargs)
        except Exception as exc:  # not a checkpoint, or weights of another architecture
            first = (str(exc).splitlines() or [""])[0][:200]
            raise MotivnetError(f"student weights {weights} do not load into {entry['timm']} "
                                f"({type(exc).__name__}: {first})") from exc
    return timm.create_model(entry["timm"], pretrained=False, num_classes=num_classes, **kwargs)


def is_vit(name: str) -> bool:
    return bool(STUDENTS[name].get("vit"))
