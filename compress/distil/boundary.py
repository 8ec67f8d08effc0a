"""Views moved toward the student's own decision boundary, labelled by the teacher
(``--boundary SHARE``, consistent teaching only).

The faces every student misses are those where the teacher all but ties between two classes
(benchmarks/results/patient-student.md, section 35): the few photos near a boundary are what
tells a student where the teacher draws it. Knowledge distillation with boundary-supporting
samples (Heo et al., AAAI 2019) makes more such inputs by moving training images toward a
boundary with a gradient step and asking the teacher about them; the teacher here is an engine
without gradients, so the step follows the *student's* gradient (as Jacobian-based augmentation
does for a model that can only be queried, Papernot et al. 2017): a share of each batch's views
is moved, one signed step of up to ``--boundary-step`` pixel levels, toward the student's runner-up
class, and the teacher labels the moved view. Where the student's boundary is where the
teacher's is, the teacher answers as the student expects; where it is not, the step lands on a
face that teaches the difference.

Both cuts of a view (the student's and the teacher's) get the same move, resized from the
student's input to the teacher's, so the two cuts must show the same part of the face.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec, normalize_batch

STEP = TrainConfig.boundary_step  # the largest move of a pixel by default, in 0-255 levels


def require_same_cut(student: CropSpec, teacher: CropSpec) -> None:
    """Refuse ``--boundary`` unless a move of the student's input is a move of the teacher's: the
    same region of the face (the aligned template the same up to scale), a float RGB or BGR
    input for the student."""
    if student.dtype == "uint8" or student.color not in ("rgb", "bgr"):
        raise MotivnetError(f"--boundary needs a float RGB or BGR student input, not "
                            f"{student.dtype} {student.color}")
    same = (student.region == teacher.region and student.resize == teacher.resize
            and student.height * teacher.width == teacher.height * student.width)
    if same and student.aligned:
        same = np.allclose(student.points() / student.width, teacher.points() / teacher.width,
                           atol=1e-3)
    if same and not student.aligned:
        same = abs(student.margin - teacher.margin) < 1e-6
    if not same:
        raise MotivnetError(f"--boundary needs the student and the teacher to see the same cut "
                            f"of the face; the student's is {student.region!r} at "
                            f"{student.width}x{student.height}, the teacher's "
                            f"{teacher.region!r} at {teacher.width}x{teacher.height}")


def boundary_direction(model: torch.nn.Module, cuts: np.ndarray, spec: CropSpec,
                       extra: int = 0) -> np.ndarray:
    """For each cut face (uint8 N x H x W x 3, BGR as :func:`~motivnet_edge.targets.preprocess.
    cut` gives), the sign (-1, 0 or 1) of the change of each pixel that most lowers the student's
    cross-entropy against its own runner-up class, in the cut's own layout and channel order.
    ``extra``: continuous outputs past the class logits in the model's rows. The model is run
    in eval mode (BatchNorm's running figures untouched, a hinted student's hint columns not
    given) and left as it was."""
    device = next(model.parameters()).device
    x = torch.from_numpy(normalize_batch(cuts, spec)).to(device).requires_grad_(True)
    was = model.training
    model.eval()
    try:
        out = model(x.contiguous(memory_format=torch.channels_last)).float()
    finally:
        model.train(was)
    out = out[:, :out.shape[1] - extra] if extra else out
    runner_up = out.detach().topk(2, 1).indices[:, 1]
    (grad,) = torch.autograd.grad(F.cross_entropy(out, runner_up), x)
    sign = (-grad).sign().cpu().numpy()
    if spec.layout == "nchw":
        sign = sign.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(sign[..., ::-1] if spec.color == "rgb" else sign)


def toward_boundary(model: torch.nn.Module, views: Sequence[np.ndarray], spec: CropSpec,
                    rng: np.random.Generator, share: float, extra: int = 0,
                    largest: float = STEP) -> list[np.ndarray]:
    """``views`` (uint8 stacks: the student's cuts first, then the teacher's of the same faces)
    with ``share`` of the faces moved toward the student's boundary
    (:func:`boundary_direction`), each by a step uniform in 0..``largest`` levels, alike in
    every stack (the move resized to each stack's size)."""
    chosen = np.flatnonzero(rng.random(len(views[0])) < share)
    if not len(chosen):
        return list(views)
    sign = boundary_direction(model, views[0][chosen], spec, extra)
    step = rng.uniform(0.0, largest, len(chosen)).astype(np.float32).reshape(-1, 1, 1, 1)
    return moved_views(views, chosen, sign * step)


def moved_views(views: Sequence[np.ndarray], chosen: np.ndarray, move: np.ndarray
                ) -> list[np.ndarray]:
    """``views`` (uint8 stacks of the same faces) with the faces ``chosen`` moved by ``move``
    (levels, len(chosen) x H x W x 3 at the first stack's size): resized to each stack's size
    (averaged over the pixels each of its pixels covers), rounded, clipped to 0..255."""
    out = []
    for stack in views:
        h, w = stack.shape[1:3]
        here = move if move.shape[1:3] == (h, w) else np.stack(
            [cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in move])
        here = here.mean(-1) if stack.ndim == 3 else here
        moved = stack.copy()
        moved[chosen] = np.clip(np.rint(stack[chosen].astype(np.float32) + here), 0, 255)
        out.append(moved)
    return out
