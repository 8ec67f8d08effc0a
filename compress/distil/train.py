"""The training loop shared by distillation and the demo teacher.

Loss (:mod:`.losses`): KL divergence to the teacher's outputs softened at temperature T (scaled
by T^2), plus alpha x cross-entropy where labels exist and ``top1`` x cross-entropy on the
teacher's top-1 class (with ``dkd``, the KL term decoupled: :mod:`.decoupled`); with no teacher,
cross-entropy alone. AdamW, cosine schedule with warm-up, mixed precision on CUDA, progress on
a terminal or as log lines, a checkpoint each epoch (atomic) and resume, a fixed seed.

Unlabelled real faces are skewed (the real teacher calls 59 % of faces-unlabelled happy): with
``balance`` > 0 batches are drawn with probability ~ freq(teacher's top-1)^-balance. A small data
set gets more epochs than asked for, up to ``min_steps`` optimizer steps.

With ``consistent`` (and a teacher given to :func:`train`), the teacher is run every step on the
very view the student is shown (augmented, a share ``mixup`` of it blended with another face and
a share ``cutmix`` given a part of another), instead of its cached outputs for the plain face:
fixed answers for faces seen in many disguises are memorised. The cached outputs still drive the
balanced sampling. With ``boundary``, a share of the views is first moved toward the student's
own decision boundary (:mod:`.boundary`).

Every epoch is measured on the held-out faces, per half when the halves are given
(:mod:`.selection`); with ``ema`` a moving average of the weights (:mod:`.average`) is kept,
measured and checkpointed beside them, and at the end the selection rule picks one of the two.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.distil.augment import augmented_input, training_views
from motivnet_edge.compress.distil.average import WeightAverage
from motivnet_edge.compress.distil.boundary import toward_boundary
from motivnet_edge.compress.distil.losses import distillation_loss
from motivnet_edge.compress.distil.selection import (
    AVERAGE_PREFIX,
    evaluate,
    halves_figures,
    prefers_average,
)
from motivnet_edge.compress.distil.world import SINGLE, World
from motivnet_edge.compress.inference import channels_last, predict
from motivnet_edge.compress.models.checkpoints import save_checkpoint
from motivnet_edge.compress.models.teachers import Teacher
from motivnet_edge.compress.progress import Progress
from motivnet_edge.compress.settings import TrainConfig, resume_conflicts
from motivnet_edge.targets.classifier_spec import OutputLayout
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_inputs, normalize_batch

log = logging.getLogger(__name__)


def make_tensor(crops: Sequence[FaceImage], spec: CropSpec, rng=None,
                strength: float = 0.0, zoom: float = 0.0) -> torch.Tensor:
    """A batch (channels-last in memory, which oneDNN convolutions run faster on CPU)."""
    if rng is not None and (strength > 0 or zoom > 0):
        batch = np.stack([augmented_input(c, spec, rng, strength, zoom) for c in crops])
    else:
        batch = make_inputs(crops, spec)
    return channels_last(batch)


def sample_weights(teacher: np.ndarray | None, labels: np.ndarray, balance: float,
                   values: int = 0) -> np.ndarray | None:
    """Per-sample probabilities ~ freq(class)^-balance (the teacher's top-1 among its class
    logits, the rows' last ``values`` numbers being continuous outputs; else the label); None
    for uniform sampling."""
    if balance <= 0:
        return None
    cls = teacher[:, :teacher.shape[1] - values].argmax(1) if teacher is not None \
        else np.asarray(labels)
    if cls.min() < 0:
        return None
    freq = np.bincount(cls, minlength=int(cls.max()) + 1) / len(cls)
    w = freq[cls] ** -balance
    return w / w.sum()


def _step(model: torch.nn.Module, optim: tuple, x: torch.Tensor, target: torch.Tensor | None,
          labels: torch.Tensor, cfg: TrainConfig, values: int = 0, hints: int = 0) -> float:
    """One optimizer step (bf16 autocast on CUDA, gradients clipped at norm 5); its loss.
    ``hints``: how many of the last columns of the model's and the target's rows are hints."""
    opt, sched, params = optim
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        out = model(x).float()
    loss = distillation_loss(out, target, labels, cfg.temperature, cfg.alpha, values,
                             (cfg.hint, out.shape[1] - hints) if hints else None, cfg.standardise,
                             cfg.top1, cfg.dkd)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    opt.step()
    sched.step()
    return loss.item()


def _log_epoch(desc: str, metrics: dict) -> None:
    log.info("%s epoch %d: %s", desc, metrics["epoch"],
             ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in metrics.items()))


def _steps(n: int, cfg: TrainConfig, desc: str) -> tuple[int, int]:
    """(steps per epoch, epochs) for ``n`` training crops. The incomplete last batch is dropped
    (a batch of one breaks BatchNorm); the order is reshuffled every epoch, so every crop is
    still seen. A small data set gets more epochs, up to ``cfg.min_steps`` steps."""
    steps_per_epoch = max(1, n // cfg.batch)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    if epochs > cfg.epochs:
        log.info("%s: %d epochs instead of %d, for at least %d steps of %d crops each", desc,
                 epochs, cfg.epochs, cfg.min_steps, cfg.batch)
    return steps_per_epoch, epochs


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, total: int, warm: int):
    """AdamW over the trainable parameters (without ``cfg.decay_norms``, the one-dimensional
    ones, BatchNorm's and the biases, undecayed), linear warm-up for ``warm`` steps then cosine
    to 0 at ``total``: (parameters, optimizer, scheduler)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decayed = [p for p in params if cfg.decay_norms or p.ndim > 1]
    kept = [p for p in params if not (cfg.decay_norms or p.ndim > 1)]
    groups = [{"params": decayed}] + ([{"params": kept, "weight_decay": 0.0}] if kept else [])
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm)))))
    return params, opt, sched


def _resume(checkpoint: Path, cfg: TrainConfig, model, opt, sched, device,
            average: WeightAverage | None) -> tuple[int, list[dict]]:
    """Model, optimizer, schedule and weight average restored from a checkpoint made with the
    settings ``cfg`` gives (every checkpoint carries its settings, so another --decay-norms,
    --ema or --hint is refused by name before anything is loaded): (epochs done, history)."""
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    changed = resume_conflicts(state.get("config", {}), cfg)
    if changed:
        raise MotivnetError(f"{checkpoint} was made with other settings ({'; '.join(changed)})"
                            f": resume with its settings, or start again")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise MotivnetError(f"{checkpoint} holds another model (its --student or --size "
                            f"differ): resume with its settings, or start again") from exc
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if average is not None:
        average.load_state_dict(state["average"])
    log.info("resumed %s at epoch %d", checkpoint, state["epoch"])
    return state["epoch"], state["history"]


def _inputs(batch: list[FaceImage], spec: CropSpec, cfg: TrainConfig, rng,
            teacher: Teacher | None, cached: torch.Tensor | None, push=None
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step's student input and target: with ``teacher`` (consistent distillation) the
    teacher run on the very views the student sees (``push``: a function that moves some of
    them first, :mod:`.boundary`), else the ``cached`` outputs."""
    if teacher is not None:
        views = training_views(batch, (spec, teacher.crop), rng, cfg)
        views, teacher_views = push(views) if push else views
        return (channels_last(normalize_batch(views, spec)),
                torch.from_numpy(teacher.predict_cut(teacher_views)))
    return make_tensor(batch, spec, rng, cfg.augment, cfg.zoom), cached


@dataclass
class _Batches:
    """What every step draws from: the crops, their cached teacher rows and labels (tensors),
    the sampling weights, and this process's place among the ranks."""

    crops: Sequence[FaceImage]
    teacher: torch.Tensor | None
    labels: torch.Tensor
    weights: np.ndarray | None
    world: World

    def order(self, rng: np.random.Generator, steps: int, batch: int) -> np.ndarray:
        """The epoch's order of crops: shuffled, or drawn by weight (the same on every rank)."""
        n = len(self.crops)
        return rng.permutation(n) if self.weights is None else \
            rng.choice(n, steps * batch, p=self.weights)

    def mine(self, order: np.ndarray, step: int, batch: int) -> np.ndarray:
        """This rank's part of a step's batch of the order."""
        world = self.world
        return order[step * batch:(step + 1) * batch][world.rank::world.size]


def _epoch(model, optim, data: _Batches, spec: CropSpec, cfg: TrainConfig, epoch: int,
           steps: int, teacher: Teacher | None, values: int, bar: Progress,
           average: WeightAverage | None) -> tuple[float, float]:
    """One epoch of steps: the running loss and the seconds the steps took."""
    device = torch.device(cfg.device)
    rng = np.random.default_rng(cfg.seed * 1000 + epoch)
    order = data.order(rng, steps, cfg.batch)
    world = data.world
    # each rank its own augmentation (one process keeps the order's generator, as it did)
    views = np.random.default_rng([cfg.seed * 1000 + epoch, world.rank]) \
        if world.distributed else rng
    hints = getattr(teacher, "width", 0) if cfg.hint > 0 else 0  # hint columns in each row
    moves = np.random.default_rng([cfg.seed * 1000 + epoch, world.rank, 2])  # views' draws kept
    push = (lambda v: toward_boundary(getattr(model, "module", model), v, spec, moves,
                                      cfg.boundary, values, cfg.boundary_step)
            ) if cfg.boundary else None
    running, began = 0.0, time.monotonic()
    for step in range(steps):
        idx = data.mine(order, step, cfg.batch)
        x, target = _inputs([data.crops[i] for i in idx], spec, cfg, views,
                            teacher if cfg.consistent else None,
                            None if data.teacher is None else data.teacher[idx], push)
        loss = _step(model, optim, x.to(device), None if target is None else target.to(device),
                     data.labels[idx].to(device), cfg, values, hints)
        if average is not None:
            average.update()
        running = 0.9 * running + 0.1 * loss if step else loss
        bar.update(1, epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{running:.3f}")
    return running, time.monotonic() - began


def _distributed(model: torch.nn.Module, world: World, device: torch.device):
    """The module each step runs: ``model`` itself, or wrapped in DistributedDataParallel
    (gradients averaged over the ranks in backward)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index]
                                   if device.type == "cuda" else None)


@dataclass
class _HeldOut:
    """The held-out faces every epoch is measured on: their teacher rows and labels, and which
    of them are in the select half (:mod:`.selection`; None: no halves)."""

    crops: Sequence[FaceImage]
    teacher: np.ndarray | None
    labels: np.ndarray
    select: np.ndarray | None

    def figures(self, model, spec: CropSpec, cfg: TrainConfig, layout: OutputLayout | None,
                prefix: str = "") -> dict:
        rows = predict(model, self.crops, spec, cfg.device)
        out = {f"{prefix}{k}": v for k, v in evaluate(rows, self.teacher, self.labels,
                                                        layout).items() if k != "n" or not prefix}
        if self.select is not None and self.teacher is not None:
            lay = layout or OutputLayout.of(rows.shape[1])
            out.update(halves_figures(lay.class_outputs(rows), lay.class_outputs(self.teacher),
                                      self.select, prefix))
        return out


def _measure(model, average: WeightAverage | None, held: _HeldOut, spec: CropSpec,
             cfg: TrainConfig, layout: OutputLayout | None) -> dict:
    """An epoch's figures on the held-out faces: the running weights', and their average's
    (keys ``ema_...``) when there is one."""
    out = held.figures(model, spec, cfg, layout)
    if average is not None:
        out.update(held.figures(average.model, spec, cfg, layout, prefix=AVERAGE_PREFIX))
    return out


def _finish(model, average: WeightAverage | None, history: list[dict], desc: str) -> None:
    """With a weight average, ``model`` becomes whichever of the running weights and their
    average the selection rule prefers on the last epoch (select half; the average when there
    are no halves); the choice is recorded in the last epoch's entry."""
    if average is None or not history:
        return
    last = history[-1]
    use = prefers_average(last)
    last["weights"] = "average" if use else "running"
    if use:
        model.load_state_dict(average.model.state_dict())
    log.info("%s: the student is the %s weights (selection rule on the select half)", desc,
             last["weights"])


def train(model: torch.nn.Module, spec: CropSpec, train_crops: Sequence[FaceImage],
          train_teacher: np.ndarray | None, train_labels: np.ndarray,
          val_crops: Sequence[FaceImage], val_teacher: np.ndarray | None,
          val_labels: np.ndarray, cfg: TrainConfig, checkpoint: Path | None = None,
          resume: bool = False, progress: bool = True, desc: str = "train",
          teacher: Teacher | None = None, layout: OutputLayout | None = None,
          world: World = SINGLE, val_select: np.ndarray | None = None) -> list[dict]:
    """Train ``model`` in place; returns one evaluation dict per epoch. ``teacher``: run on each
    step's views when ``cfg.consistent``; ``layout``: the rows of the model and the teacher
    outputs (class logits only when None); ``val_select``: which held-out faces are in the
    select half (figures per half). With several processes (``world``), each takes its part of
    every step's ``cfg.batch`` (which the command checked splits evenly) and rank 0
    evaluates, logs and checkpoints."""
    if cfg.consistent and teacher is None:
        raise MotivnetError("consistent distillation needs the teacher itself, not only its "
                            "cached outputs")
    if not len(train_crops):
        raise MotivnetError("no training crops")
    torch.manual_seed(cfg.seed + 7919 * world.rank)
    device = torch.device(cfg.device)
    model.to(device, memory_format=torch.channels_last)
    steps_per_epoch, epochs = _steps(len(train_crops), cfg, desc)
    params, opt, sched = _optimizer(model, cfg, epochs * steps_per_epoch,
                                    max(1, int(cfg.warmup_epochs * steps_per_epoch)))
    average = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    history: list[dict] = []
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        start, history = _resume(checkpoint, cfg, model, opt, sched, device, average)
    values = len(layout.continuous) if layout else 0
    data = _Batches(train_crops, None if train_teacher is None else torch.as_tensor(train_teacher),
                    torch.as_tensor(np.asarray(train_labels), dtype=torch.long),
                    sample_weights(train_teacher, np.asarray(train_labels), cfg.balance, values),
                    world)
    held = _HeldOut(val_crops, val_teacher, np.asarray(val_labels), val_select)
    net = _distributed(model, world, device)
    run = replace(cfg, epochs=epochs)
    bar = Progress((epochs - start) * steps_per_epoch, desc, "step", progress and world.main)
    took = 0.0
    for epoch in range(start, epochs):
        net.train()
        loss, seconds = _epoch(net, (opt, sched, params), data, spec, run, epoch,
                               steps_per_epoch, teacher, values, bar, average)
        took += seconds
        if world.main:
            history.append({"epoch": epoch + 1, "loss": loss, "seconds": seconds,
                            **_measure(model, average, held, spec, cfg, layout)})
            _log_epoch(desc, history[-1])
            if checkpoint is not None:
                save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "scheduler": sched.state_dict(), "epoch": epoch + 1,
                                 "history": history, "config": asdict(cfg),
                                 **({"average": average.state_dict()} if average else {})},
                                checkpoint)
        world.barrier()
    bar.close()
    _log_speed(desc, world, (epochs - start) * steps_per_epoch, took)
    _finish(model, average, history, desc)
    model.eval()
    return history


def _log_speed(desc: str, world: World, steps: int, took: float) -> None:
    if steps:
        log.info("%s%s: %d steps in %.1f s (not counting evaluation), %.3f s per step", desc,
                 f", {world.label}" if world.distributed else "", steps, took, took / steps)
