"""Logit standardisation (``--standardise``): the KD term sees each face's logits z-scored, so
it ignores their shift and scale; after training one scale, fitted to the teacher, is folded into
the student's class head."""

import json

import numpy as np
import pytest
import torch

from motivnet_edge.compress.distil.hints import Hinted
from motivnet_edge.compress.distil.standardise import best_scale, fold_scale, standardised
from motivnet_edge.compress.distil.train import distillation_loss
from motivnet_edge.compress.inference import predict
from motivnet_edge.compress.models.checkpoints import read_state_dict
from motivnet_edge.compress.models.students import class_head
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.engine import kl_divergence
from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage
from tests.helpers import TinyNet, cli, output

SPEC = CropSpec(height=32, width=32, margin=0.1)
NO_LABELS = torch.full((8,), -1)


def test_standardised_rows_have_mean_zero_and_unit_spread():
    z = standardised(torch.randn(8, 7) * 5 + 3)
    assert torch.allclose(z.mean(1), torch.zeros(8), atol=1e-5)
    assert torch.allclose(z.std(1), torch.ones(8), atol=1e-5)


def test_the_standardised_loss_ignores_the_students_shift_and_scale_and_the_plain_one_does_not():
    torch.manual_seed(0)
    out, teacher = torch.randn(8, 7), torch.randn(8, 7) * 4
    loss = lambda o, standard: distillation_loss(o, teacher, NO_LABELS, 2.0, 0.5,  # noqa: E731
                                                 standard=standard).item()
    assert loss(3 * out + 1, True) == pytest.approx(loss(out, True), rel=1e-5)
    assert loss(3 * out + 1, False) != pytest.approx(loss(out, False), rel=1e-2)
    assert loss(teacher / 4 - 2, True) == pytest.approx(0, abs=1e-6)  # the same ranking, spread


def test_the_fitted_scale_recovers_a_known_factor():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(500, 7))
    teacher = 2.5 * student + rng.normal(scale=0.05, size=(500, 7))
    assert best_scale(student, teacher) == pytest.approx(2.5, rel=0.02)


def test_folding_the_scale_multiplies_the_class_logits_and_brings_them_to_the_teacher():
    rng = np.random.default_rng(1)
    crops = [FaceImage(rng.integers(0, 255, (48, 48, 3), np.uint8), Face((8., 8., 40., 40.)))
             for _ in range(40)]
    torch.manual_seed(0)
    student = TinyNet().eval()
    before = predict(student, crops, SPEC)
    teacher = 6.0 * before + 0.5
    hinted = Hinted(student, 16)  # the head is found inside the hint wrapper too
    scale = fold_scale(hinted, crops, teacher, SPEC, None)
    after = predict(student, crops, SPEC)
    assert scale == pytest.approx(6.0, rel=0.02)
    assert np.allclose(after, scale * before, atol=1e-4)
    assert kl_divergence(teacher, after).mean() < 0.01 < kl_divergence(teacher, before).mean()
    assert class_head(hinted) is student.classifier


def test_distil_with_standardise_folds_the_recorded_scale_into_the_saved_student(tmp_path):
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--cache-dir", tmp_path / "cache", "--epochs", "1",
              "--standardise", "--quiet")
    assert res.returncode == 0, output(res)
    folder = RunFolder(out)
    scale = json.loads(folder.history.read_text())["history"][-1]["logit_scale"]
    assert scale > 0 and scale != 1
    trained = torch.load(folder.checkpoint, map_location="cpu", weights_only=False)["model"]
    saved, _ = read_state_dict(folder.student_weights)
    key = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 2
               and saved[k].shape[0] == 7)
    assert torch.allclose(saved[key], scale * trained[key], atol=1e-6)
