"""Consistent distillation: the student and the teacher are shown the same augmented (and mixed)
view, cut once for each input spec, and the student learns the teacher's live answers on those
views, not the cached answers for the plain faces."""

import numpy as np
import torch

from motivnet_edge.compress.distil.augment import augmented_views
from motivnet_edge.compress.distil.train import train
from motivnet_edge.compress.inference import predict
from motivnet_edge.compress.models.teachers import load_teacher
from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage, cut
from tests.helpers import TinyNet

STUDENT = CropSpec(height=32, width=32, margin=0.1)
TEACHER = CropSpec(height=24, width=24, margin=0.1, color="gray", mean=(0.0,), std=(255.0,))
FACE = Face((10.0, 10.0, 28.0, 28.0))  # well inside the image: no cut reaches its border


def flat_face(value: int, side: int = 48) -> FaceImage:
    return FaceImage(np.full((side, side, 3), value, np.uint8), FACE)


def noise_face(seed: int) -> FaceImage:
    return FaceImage(np.random.default_rng(seed).integers(0, 255, (60, 48, 3), np.uint8), FACE)


def test_without_jitter_the_views_are_the_plain_cuts_for_each_spec():
    crops = [flat_face(40), noise_face(0)]
    views = augmented_views(crops, (STUDENT, TEACHER), np.random.default_rng(0), strength=0.0)
    for spec, stack in zip((STUDENT, TEACHER), views, strict=True):
        assert stack.dtype == np.uint8
        assert np.array_equal(stack, np.stack([cut(c.image, c.face, spec) for c in crops]))


def test_one_spec_twice_gives_the_same_augmented_view():
    crops = [noise_face(i) for i in range(6)]
    a, b = augmented_views(crops, (STUDENT, STUDENT), np.random.default_rng(3), strength=1.0)
    assert np.array_equal(a, b)
    plain = np.stack([cut(c.image, c.face, STUDENT) for c in crops])
    assert not np.array_equal(a, plain)  # the jitter did move or recolour the faces


def test_mixup_blends_each_face_alike_in_every_cut():
    crops = [flat_face(v) for v in (0, 200, 0, 200, 0, 200, 0, 200)]
    student, teacher = augmented_views(crops, (STUDENT, TEACHER), np.random.default_rng(1),
                                       strength=0.0, mixup=1.0)
    own = np.array([0, 200] * 4, float)
    # a flat face blended with another flat face: the weight of the other one, read off the pixel
    for views in (student, teacher):
        value = views[:, views.shape[1] // 2, views.shape[2] // 2].reshape(len(crops), -1)[:, 0]
        value = value.astype(float)
        moved = value != own
        assert moved.any()
        weight = np.abs(value - own)[moved] / 200.0
        assert np.all((weight > 0) & (weight <= 0.5 + 1 / 200))
    assert np.array_equal(student[:, 16, 16, 0], teacher[:, 12, 12, 0])


def pasted_square(view: np.ndarray, own: int) -> tuple[float, ...] | None:
    """Where a flat face of value ``own`` was given another face's pixels: the square (top,
    bottom, left, right as fractions of the view), checked to be all of what changed."""
    changed = view.reshape(*view.shape[:2], -1)[..., 0] != own
    if not changed.any():
        return None
    rows, cols = np.nonzero(changed)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    assert changed[r0:r1, c0:c1].all() and changed.sum() == (r1 - r0) * (c1 - c0)
    h, w = changed.shape
    return r0 / h, r1 / h, c0 / w, c1 / w


def test_cutmix_pastes_the_same_part_of_another_face_in_every_cut():
    values = [0, 200] * 6
    crops = [flat_face(v) for v in values]
    student, teacher = augmented_views(crops, (STUDENT, TEACHER), np.random.default_rng(2),
                                       strength=0.0, cutmix=1.0)
    pasted = 0
    for i, own in enumerate(values):
        a, b = pasted_square(student[i], own), pasted_square(teacher[i], own)
        if a is None or b is None:  # from a face of the same value, or too small to cut
            square = a or b
            assert square is None or (square[1] - square[0]) * (square[3] - square[2]) < 0.01
            continue
        pasted += 1
        assert np.allclose(a, b, atol=0.05)  # the same part of the face in both cuts
        assert (a[1] - a[0]) * (a[3] - a[2]) <= 0.5 + 0.05
    assert pasted >= 3
    plain = augmented_views(crops, (STUDENT,), np.random.default_rng(2), strength=0.0)[0]
    assert all(pasted_square(plain[i], v) is None for i, v in enumerate(values))


def brightness_teacher(tmp_path):
    """A TorchScript teacher that calls bright faces Happy and dark faces Sad."""
    happy, sad = AFFECTNET7.index("Happiness"), AFFECTNET7.index("Sadness")

    class Brightness(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sign = torch.zeros(7)
            sign[happy], sign[sad] = 20.0, -20.0
            self.register_buffer("sign", sign)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            level = x.mean(dim=(1, 2, 3)) - 0.5  # gray input scaled to 0..1
            return level[:, None] * self.sign[None, :]

    path = tmp_path / "brightness.pt"
    torch.jit.script(Brightness()).save(str(path))
    return load_teacher(path, ClassifierSpec(tuple(AFFECTNET7), TEACHER, "logits")), happy, sad


def test_the_student_learns_the_teachers_live_answers_not_its_cached_ones(tmp_path):
    teacher, happy, sad = brightness_teacher(tmp_path)
    rng = np.random.default_rng(0)
    crops = [flat_face(int(v)) for v in rng.choice([30, 60, 190, 220], 64)]
    assert np.array_equal(teacher.predict_cut(np.stack([cut(c.image, None, TEACHER)
                                                        for c in crops])),
                          teacher.predict(crops))
    cached = np.zeros((len(crops), 7), np.float32)
    cached[:, AFFECTNET7.index("Neutral")] = 10.0  # stale answers: everything Neutral
    no_labels = np.full(len(crops), -1)
    test = [flat_face(25), flat_face(225)]
    answers = {}
    for consistent in (True, False):
        cfg = TrainConfig(epochs=12, batch=16, lr=1e-2, augment=0.3, consistent=consistent,
                          mixup=0.3)
        torch.manual_seed(0)
        model = TinyNet()
        train(model, STUDENT, crops, cached, no_labels, crops[:4], cached[:4], no_labels[:4],
              cfg, progress=False, teacher=teacher)
        answers[consistent] = list(predict(model, test, STUDENT).argmax(1))
    assert answers[True] == [sad, happy]
    assert answers[False] == [AFFECTNET7.index("Neutral")] * 2  # the cached answers, learnt
