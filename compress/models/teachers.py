"""Teachers: MotivNet from a checkpoint, or any exported classifier (ONNX, OpenVINO IR, TFLite,
TorchScript) described by a :class:`~motivnet_edge.targets.classifier_spec.ClassifierSpec`
(its crop spec, class order and output kind). Every teacher maps a list of stored faces to
logits in the student's class order, through the same crop function as the device."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.models.checkpoints import is_torchscript, load_checkpoint
from motivnet_edge.compress.models.motivnet import build_motivnet, crop_spec_for, inference_dtype
from motivnet_edge.targets.classifier_spec import ClassifierSpec, OutputLayout
from motivnet_edge.targets.engine import EngineOptions, engine_for_file, load_engine_with_metadata
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import SUFFIXES
from motivnet_edge.targets.labels import AFFECTNET7, reorder_index
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_inputs, normalize_batch

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """Base: ``identity`` (kind, name, sha256) and ``spec`` define the cache key; the spec's
    labels are the teacher's own class order, reordered into ``classes`` on output."""

    identity: dict
    spec: ClassifierSpec
    classes: Sequence[str] = AFFECTNET7
    path: Path | None = None
    _index: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = reorder_index(self.spec.labels, self.classes)

    @property
    def crop(self) -> CropSpec:
        return self.spec.crop

    @property
    def layout(self) -> OutputLayout:
        """What a row of this teacher's outputs holds: logits in ``classes`` order, then its
        continuous outputs (valence, arousal) when its spec names them."""
        return OutputLayout.appended(len(self.classes), self.spec.layout.ranges)

    @property
    def key(self) -> str:
        rows = {"rows": self.layout.to_dict()} if self.spec.continuous else {}
        blob = json.dumps({"id": self.identity, "spec": self.spec.to_dict(),
                           "classes": list(self.classes), **rows}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _logits(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, crops: Sequence[FaceImage]) -> np.ndarray:
        return self._outputs(make_inputs(crops, self.crop))

    def predict_cut(self, images: np.ndarray) -> np.ndarray:
        """Logits for faces already cut to this teacher's input (uint8, N x H x W x C, as
        :func:`~motivnet_edge.targets.preprocess.cut` gives): distillation shows the teacher the
        same augmented (and mixed) view as the student."""
        return self._outputs(normalize_batch(images, self.crop))

    def _outputs(self, batch: np.ndarray) -> np.ndarray:
        return self.rows(self._logits(batch))

    def rows(self, raw: np.ndarray) -> np.ndarray:
        """Rows of outputs from the model's raw outputs: logits in ``classes`` order, then the
        continuous outputs its spec names."""
        logits = self.spec.logits(raw)[:, self._index]
        values = [v[:, None] for v in self.spec.values(raw).values()]  # CONTINUOUS order
        return np.concatenate([logits, *values], 1).astype(np.float32)


class TorchTeacher(Teacher):
    """A torch module (MotivNet or a TorchScript classifier); bf16/fp16 on CUDA when asked."""

    def __init__(self, module: torch.nn.Module, identity: dict, spec: ClassifierSpec,
                 device: str = "cpu", precision: str = "fp32") -> None:
        super().__init__(identity, spec)
        self.device = torch.device(device)
        self.dtype = inference_dtype(self.device, precision)
        self.module = module.to(self.device, self.dtype).eval()

    @torch.no_grad()
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, self.dtype)
        return self.module(x).float().cpu().numpy()


class EngineTeacher(Teacher):
    """An exported classifier run in its engine (ONNX Runtime's CUDA provider when asked)."""

    def __init__(self, path: Path, identity: dict, spec: ClassifierSpec,
                 device: str = "cpu") -> None:
        super().__init__(identity, spec)
        meta = {"labels": list(spec.labels), "crop": spec.crop.to_dict()}
        self.engine = load_engine_with_metadata(path, meta, EngineOptions(device=device),
                                                identity.get("engine"))

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.run_raw(batch)  # its spec reads the rows (classes, other heads)


def spec_from_file(path: Path, spec: ClassifierSpec) -> ClassifierSpec:
    """Fill size, layout and channels from an exported file's input where it says."""
    fmt = SUFFIXES.get(path.suffix.lower())
    shape = fmt.codec().input_shape(path) if fmt else []
    if len(shape) != 4:
        return spec
    base = spec.crop
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        layout, c, h, w = "nchw", shape[1], shape[2], shape[3]
    else:
        layout, h, w, c = "nhwc", shape[1], shape[2], shape[3]
    color = "gray" if c == 1 else base.color if base.color != "gray" else "rgb"
    mean, std = base.mean, base.std
    if color == "gray" and len(mean) > 1:
        mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
    values = {**base.to_dict(), "layout": layout, "color": color, "mean": mean, "std": std}
    if h > 0 and w > 0:
        values.update(height=h, width=w)
    return replace(spec, crop=CropSpec.from_dict(values))


def load_teacher(path: Path, spec: ClassifierSpec | None = None, model: str = "motivnet-1b",
                 device: str = "cpu", precision: str = "bf16", engine: str | None = None
                 ) -> Teacher:
    """A teacher from ``path``: a MotivNet/Sapiens checkpoint (``.pth``/``.safetensors``), or an
    exported ONNX, OpenVINO IR, TFLite or TorchScript classifier with its ``spec``, run in
    ``engine`` (default: its format's), which is then part of its identity and cache key."""
    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"teacher {path} does not exist")
    identity = {"file": path.name, "sha256": sha256_file(path)}
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None and not (is_torchscript(path) and spec is not None):
        net = build_motivnet(model)
        result = load_checkpoint(net, path)
        if result.loaded != "all":
            raise MotivnetError(f"teacher {path} is a {result.kind} checkpoint: it has no "
                                f"trained head; give a MotivNet state dict")
        spec = spec or ClassifierSpec(AFFECTNET7, crop_spec_for(model), "logits")
        teacher = TorchTeacher(net, {"kind": "motivnet", "model": model, **identity}, spec,
                               device, precision)
    elif spec is None:
        raise MotivnetError(f"teacher {path} needs its class order and preprocessing: "
                            f"--teacher-spec, or --teacher-labels in the order of its outputs")
    else:
        spec = spec_from_file(path, spec)
        log.info("teacher %s: input %s %s %s, labels %s", path, spec.crop.input_shape,
                 spec.crop.color, spec.crop.region, list(spec.labels))
        if fmt is not None:
            if engine_for_file(path, engine, f"teacher {path}") != fmt.engine:
                identity["engine"] = engine
            teacher = EngineTeacher(path, {"kind": fmt.name, **identity}, spec, device=device)
        else:
            module = torch.jit.load(str(path), map_location="cpu")
            teacher = TorchTeacher(module, {"kind": "torchscript", **identity}, spec, device,
                                   precision)
    teacher.path = path
    return teacher


def reload_teacher(record, device: str = "cpu", engine: str | None = None) -> Teacher:
    """The teacher a distil stage recorded (:class:`~motivnet_edge.compress.runfolder.
    TeacherRecord`), loaded again from its file, which must be unchanged; an exported one in
    ``engine`` (default: the engine it was recorded with)."""
    path = Path(record.path)
    if not path.is_file():
        raise MotivnetError(f"the teacher {path} this folder was distilled from is gone")
    if sha256_file(path) != record.identity["sha256"]:
        raise MotivnetError(f"the teacher {path} changed since this folder was distilled")
    spec = ClassifierSpec.from_dict(record.spec, "recorded teacher spec")
    return load_teacher(path, spec, record.identity.get("model", "motivnet-1b"), device,
                        "fp32", engine or record.identity.get("engine"))
