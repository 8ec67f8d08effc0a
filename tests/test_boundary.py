"""Views moved toward the student's own decision boundary before the teacher labels them
(``--boundary``): the move lowers the student's margin, lands alike on the teacher's cut, keeps
the cut's channel order, and is refused where the two cuts differ."""

import numpy as np
import pytest
import torch

from motivnet_edge.compress.distil.boundary import (
    STEP,
    boundary_direction,
    require_same_cut,
    toward_boundary,
)
from motivnet_edge.compress.distil.hints import Hinted
from motivnet_edge.compress.distil.train import train
from motivnet_edge.compress.models.students import student_spec
from motivnet_edge.compress.models.teachers import TorchTeacher
from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.experiments.boundary_probe import main as probe_main
from motivnet_edge.experiments.boundary_probe import plot, probe
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, cut, normalize_batch
from tests.helpers import FixedLogits, TinyNet, cli, output
from tests.test_consistent_distillation import STUDENT, TEACHER, brightness_teacher, noise_face

SPEC = CropSpec(height=32, width=32, color="rgb")


def _student(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(128, 7))


def _faces(n=24, side=32, seed=1):
    return np.random.default_rng(seed).integers(40, 216, (n, side, side, 3), dtype=np.uint8)


def _logits(model, cuts):
    with torch.no_grad():
        return model(torch.from_numpy(normalize_batch(cuts, SPEC))).numpy()


def _gap(logits, pair):
    """The first class's logit less the second's, face by face, for ``pair`` (N x 2 indices)."""
    return np.take_along_axis(logits, pair[:, :1], 1)[:, 0] \
        - np.take_along_axis(logits, pair[:, 1:], 1)[:, 0]


def test_the_move_narrows_the_students_margin_and_lands_alike_on_the_teachers_cut():
    model, faces = _student(), _faces()
    teacher_cut = faces[:, ::2, ::2].copy()  # the same faces at half the side
    moved, moved_teacher = toward_boundary(model, [faces, teacher_cut], SPEC,
                                           np.random.default_rng(0), 1.0)
    assert model.training  # left as it was
    start = _logits(model, faces)
    pair = np.argsort(-start, 1)[:, :2]  # each face's top class and runner-up
    before, after = _gap(start, pair), _gap(_logits(model, moved), pair)
    assert (after < before).mean() > 0.9, (before, after)
    change = moved.astype(int) - faces.astype(int)
    assert 0 < np.abs(change).max() <= STEP
    # the teacher's cut at half the side moves by the student's move averaged over each 2 x 2
    # block (both rounded to whole levels; no pixel reaches 0 or 255 here)
    blocks = change.reshape(len(faces), 16, 2, 16, 2, 3).mean((2, 4))
    change_teacher = moved_teacher.astype(int) - teacher_cut.astype(int)
    assert np.abs(change_teacher).max() > 0 and np.abs(change_teacher - blocks).max() <= 1.0


def test_a_share_of_the_faces_is_moved_and_the_rest_kept():
    model, faces = _student(), _faces(n=64)
    moved, same = toward_boundary(model, [faces, faces], SPEC, np.random.default_rng(3), 0.25)
    changed = np.any(moved != faces, axis=(1, 2, 3))
    assert 4 <= changed.sum() <= 30 and np.array_equal(moved, same)
    small = toward_boundary(model, [faces], SPEC, np.random.default_rng(3), 1.0, largest=2)[0]
    assert np.abs(small.astype(int) - faces.astype(int)).max() == 2  # rounded: 2 at most
    untouched = toward_boundary(model, [faces, faces], SPEC, np.random.default_rng(3), 0.0)
    assert all(np.array_equal(u, faces) for u in untouched)


def test_the_direction_is_in_the_cuts_bgr_order_for_an_rgb_student():
    """A student that reads only its input's red channel (RGB index 0): the move is in the cut's
    channel 2 (BGR), nowhere else."""
    model = _student()
    with torch.no_grad():
        model[0].weight[:, 1:] = 0
    sign = boundary_direction(model, _faces(n=8), SPEC)
    assert np.abs(sign[..., 2]).sum() > 0
    assert np.abs(sign[..., :2]).sum() == 0


def test_the_cuts_must_show_the_same_part_of_the_face():
    aligned = CropSpec(height=112, width=112, region="aligned", color="rgb")
    require_same_cut(student_spec("efficientnet_lite0", 96, 0.15, aligned), aligned)
    square = student_spec("efficientnet_lite0", 112, 0.15, None)
    with pytest.raises(MotivnetError, match="same cut.*'square'.*'aligned'"):
        require_same_cut(square, aligned)
    with pytest.raises(MotivnetError, match="float RGB or BGR"):
        require_same_cut(CropSpec(color="gray3"), CropSpec(color="gray3"))


class Recording:
    """A real teacher whose inputs are kept."""

    def __init__(self, teacher) -> None:
        self.teacher, self.crop, self.seen = teacher, teacher.crop, []

    def predict_cut(self, views):
        self.seen.append(views.copy())
        return self.teacher.predict_cut(views)


def test_training_shows_the_teacher_the_moved_views(tmp_path):
    """The loop (:func:`~motivnet_edge.compress.distil.train.train`) with ``boundary`` 1: every
    view the teacher labels is its plain cut moved by at most STEP levels, and some are moved;
    with ``boundary`` 0 (the same seed) it sees the plain cuts."""
    brightness, _, _ = brightness_teacher(tmp_path)
    crops = [noise_face(i) for i in range(32)]
    plain = {cut(c.image, c.face, TEACHER).tobytes(): cut(c.image, c.face, TEACHER)
             for c in crops}
    no_labels, cached = np.full(32, -1), brightness.predict(crops)
    shown = {}
    for share in (0.0, 1.0):
        teacher = Recording(brightness)
        cfg = TrainConfig(epochs=2, batch=16, augment=0.0, consistent=True, boundary=share)
        torch.manual_seed(0)
        history = train(TinyNet(), STUDENT, crops, cached, no_labels, crops[:4], cached[:4],
                        no_labels[:4], cfg, progress=False, teacher=teacher)
        assert len(history) == 2
        shown[share] = np.concatenate(teacher.seen)
    assert all(v.tobytes() in plain for v in shown[0.0])
    moved = [v for v in shown[1.0] if v.tobytes() not in plain]
    assert len(moved) >= len(shown[1.0]) // 2
    nearest = [min(np.abs(v.astype(int) - p.astype(int)).max() for p in plain.values())
               for v in moved]
    assert max(nearest) <= STEP


def test_distil_refuses_it_without_consistent_teaching_or_with_another_cut(tmp_path):
    """The demo's teacher cuts a stretched box, its student a square: a move of one is not a
    move of the other."""
    for extra, named in (((), "--consistent"), (("--consistent",), "same cut")):
        bad = cli("distil", "--out", tmp_path / "bad", "--cache-dir", tmp_path / "cache",
                  "--epochs", "1", "--boundary", "0.5", *extra, "--quiet")
        assert bad.returncode != 0 and named in output(bad), output(bad)
        assert "Traceback" not in output(bad) and not (tmp_path / "bad").exists()


def test_the_probe_sees_a_teacher_that_is_the_student_follow_it_on_every_move(tmp_path):
    """The probe's teacher is the student itself, on the same cut: whatever the move does to the
    student it does to the teacher; a teacher that ignores its input never changes."""
    model = _student().eval()
    faces = [FaceImage(f) for f in _faces(n=40)]
    same = TorchTeacher(model, {"kind": "torch"}, ClassifierSpec(AFFECTNET7, SPEC, "logits"))
    result = probe(model, SPEC, same, faces, [8.0], batch=16)
    row = result["steps"]["8"]
    assert result["faces"] == 40 and result["agreement_before"] == 1
    assert row["student_flips"] > 0.2 and row["teacher_flips"] == row["student_flips"]
    assert row["teacher_follows"] == 1 and row["agreement"] == 1
    fixed = TorchTeacher(FixedLogits([0.0, 1, 2, 3, 4, 5, 6]), {"kind": "torch"},
                         ClassifierSpec(AFFECTNET7, SPEC, "logits"))
    assert probe(model, SPEC, fixed, faces, [8.0])["steps"]["8"]["teacher_flips"] == 0
    # random signs of the same size move the student less than its own gradient's do
    noisy = probe(model, SPEC, same, faces, [8.0], noise=np.random.default_rng(0))["steps"]["8"]
    assert noisy["student_flips"] < row["student_flips"] and noisy["teacher_follows"] in (1, None)
    plot({"gradient": result, "noise": {"steps": {"8": noisy}}}, tmp_path / "p.png", "probe")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_the_probe_names_a_bad_against_file_before_loading_anything(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"faces": 3}')
    for item in ("no-equals", f"x={tmp_path / 'x.json'}", f"y={tmp_path / 'missing.json'}"):
        assert probe_main(["--run", str(tmp_path), "--against", item]) == 2
        assert "--against" in capsys.readouterr().err


def test_a_hinted_student_is_moved_by_its_class_logits_alone():
    """In eval mode a student with a hint layer gives its class rows only: the move is the bare
    student's, whatever the hint layer holds."""
    bare = TinyNet(channels=3)
    hinted = Hinted(bare, 5).train()
    faces = _faces(n=8)
    assert np.array_equal(boundary_direction(hinted, faces, SPEC),
                          boundary_direction(bare, faces, SPEC))
    assert hinted.training
