"""Teachers: MotivNet from a checkpoint, or any exported classifier (ONNX, TFLite, TorchScript)
with an explicit label map and preprocessing spec. Every teacher maps a list of square BGR face
crops to logits in the student's class order."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import SUFFIXES
from motivnet_edge.targets.labels import AFFECTNET7, reorder_index
from motivnet_edge.targets.preprocess import CropSpec, make_input

log = logging.getLogger(__name__)


# what ``Teacher.predict`` returns, part of the cache key: outputs cached before probability
# outputs became log-probabilities are not reused as if they were
OUTPUTS = "logits, probabilities as log-probabilities"


@dataclass
class Teacher:
    """Base: ``identity`` (kind, name, sha256) and ``spec`` define the cache key; ``labels`` is
    the teacher's own class order, reordered into ``classes`` on output."""

    identity: dict
    spec: CropSpec
    labels: Sequence[str]
    classes: Sequence[str] = AFFECTNET7
    _index: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = reorder_index(self.labels, self.classes)

    @property
    def key(self) -> str:
        blob = json.dumps({"id": self.identity, "crop": self.spec.to_dict(),
                           "labels": list(self.labels), "classes": list(self.classes),
                           "outputs": OUTPUTS}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _logits(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([make_input(c, None, self.spec) for c in crops])
        return as_logits(np.asarray(self._logits(batch), np.float32))[:, self._index]


# the smallest probability taken as such: an int8 softmax output's 0 is below 1/256
PROB_FLOOR = 1e-4


def as_logits(out: np.ndarray) -> np.ndarray:
    """Logits from a classifier's outputs. A file exported with its softmax (Keras models,
    fer's TFLite) gives probabilities: distilling at temperature T on those would soften
    numbers in [0, 1] to near-uniform targets, so they become log-probabilities (logits up to a
    constant per row). Rows that are non-negative and sum to 1 (within an int8 output's
    rounding) are taken as probabilities."""
    if out.size and out.min() >= 0 and np.allclose(out.sum(1), 1.0, atol=0.05):
        return np.log(np.maximum(out, PROB_FLOOR)).astype(np.float32)
    return out


class TorchTeacher(Teacher):
    """A torch module (MotivNet or a TorchScript classifier); bf16/fp16 on CUDA when asked."""

    def __init__(self, module: torch.nn.Module, identity: dict, spec: CropSpec,
                 labels: Sequence[str], device: str = "cpu", precision: str = "fp32") -> None:
        from motivnet_edge.compress.motivnet import inference_dtype

        super().__init__(identity, spec, labels)
        self.device = torch.device(device)
        self.dtype = inference_dtype(self.device, precision)
        self.module = module.to(self.device, self.dtype).eval()

    @torch.no_grad()
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, self.dtype)
        return self.module(x).float().cpu().numpy()


class EngineTeacher(Teacher):
    """An ONNX or TFLite classifier run in its engine (ONNX Runtime's CUDA provider when asked)."""

    def __init__(self, path: Path, identity: dict, spec: CropSpec, labels: Sequence[str],
                 device: str = "cpu") -> None:
        from motivnet_edge.targets.engine import EngineOptions, load_engine_with_metadata

        super().__init__(identity, spec, labels)
        meta = {"labels": list(labels), "crop": spec.to_dict()}
        self.engine = load_engine_with_metadata(path, meta, EngineOptions(device=device))

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.run(batch)


def spec_from_file(path: Path, base: CropSpec) -> CropSpec:
    """Fill size, layout and channels from an ONNX or TFLite file's input where it can."""
    fmt = SUFFIXES.get(path.suffix.lower())
    shape = fmt.codec().input_shape(path) if fmt else []
    if len(shape) != 4:
        return base
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        layout, c, h, w = "nchw", shape[1], shape[2], shape[3]
    else:
        layout, h, w, c = "nhwc", shape[1], shape[2], shape[3]
    color = "gray" if c == 1 else base.color if base.color != "gray" else "rgb"
    mean, std = base.mean, base.std
    if color == "gray" and len(mean) == 3:
        mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
    values = {**base.to_dict(), "layout": layout, "color": color, "mean": mean, "std": std}
    if h > 0 and w > 0:
        values.update(height=h, width=w)
    return CropSpec.from_dict(values)


def load_teacher(path: Path | None, labels: Sequence[str] | None = None,
                 spec: CropSpec | None = None, model: str = "motivnet-1b", device: str = "cpu",
                 precision: str = "bf16") -> Teacher:
    """A teacher from ``path``: a MotivNet/Sapiens checkpoint (``.pth``/``.safetensors``), or an
    exported ``.onnx``/``.tflite``/TorchScript ``.pt`` classifier with ``labels`` and ``spec``."""
    from motivnet_edge.compress.checkpoints import _is_torchscript, load_checkpoint
    from motivnet_edge.compress.motivnet import build_motivnet, crop_spec_for

    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"teacher {path} does not exist")
    identity = {"file": path.name, "sha256": sha256_file(path)}
    fmt = SUFFIXES.get(path.suffix.lower())
    exported = fmt is not None or (_is_torchscript(path) and labels is not None)
    if not exported:
        net = build_motivnet(model)
        result = load_checkpoint(net, path)
        if result.loaded != "all":
            raise MotivnetError(f"teacher {path} is a {result.kind} checkpoint: it has no "
                                f"trained head; give a MotivNet state dict")
        return TorchTeacher(net, {"kind": "motivnet", "model": model, **identity},
                            spec or crop_spec_for(model), labels or AFFECTNET7, device, precision)
    if labels is None:
        raise MotivnetError(f"teacher {path} needs its label map (--teacher-labels), in the "
                            f"order of its outputs")
    spec = spec_from_file(path, spec or CropSpec())
    log.info("teacher %s: input %s %s, labels %s", path, spec.input_shape, spec.color, labels)
    if fmt is not None:
        return EngineTeacher(path, {"kind": fmt.name, **identity}, spec, labels, device=device)
    module = torch.jit.load(str(path), map_location="cpu")
    return TorchTeacher(module, {"kind": "torchscript", **identity}, spec, labels, device,
                        precision)
