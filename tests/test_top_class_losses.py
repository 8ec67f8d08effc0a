"""The losses that weight the teacher's top class: its top-1 as a hard target (``--top1``),
added on every face, and decoupled KD (``--dkd``), the KL term split at it."""

import pytest
import torch
import torch.nn.functional as F

from motivnet_edge.compress.distil.decoupled import decoupled_parts
from motivnet_edge.compress.distil.train import distillation_loss
from motivnet_edge.compress.runfolder import RunFolder
from tests.helpers import cli, output

NO_LABELS = torch.full((16,), -1)


def _loss(out, teacher, top1, **kw):
    return distillation_loss(out, teacher, NO_LABELS, 4.0, 0.5, top1=top1, **kw)


def test_the_top1_term_is_the_cross_entropy_on_the_teachers_argmax_times_its_weight():
    torch.manual_seed(0)
    out, teacher = torch.randn(16, 7), torch.randn(16, 7) * 3
    hard = F.cross_entropy(out, teacher.argmax(1), label_smoothing=0.05)
    plain = _loss(out, teacher, 0.0)
    assert _loss(out, teacher, 2.0).item() == pytest.approx(plain.item() + 2 * hard.item(),
                                                           rel=1e-5)
    # the continuous outputs after the classes take no part in the argmax
    values = torch.cat([teacher, torch.full((16, 2), 20.0)], 1)
    student = torch.cat([out, torch.zeros(16, 2)], 1)
    extra = _loss(student, values, 2.0, values=2) - _loss(student, values, 0.0, values=2)
    assert extra.item() == pytest.approx(2 * hard.item(), rel=1e-4)


def test_the_top1_term_moves_a_student_towards_the_teachers_answers_faster():
    """A flat, uncertain teacher: the KL term alone barely separates its top class, the hard
    term does; the same steps from the same start leave more argmax agreement with it."""
    torch.manual_seed(1)
    x = torch.randn(256, 12)
    teacher = 0.15 * (x @ torch.randn(12, 7))
    agree = {}
    for top1 in (0.0, 1.0):
        torch.manual_seed(2)
        head = torch.nn.Linear(12, 7)
        opt = torch.optim.SGD(head.parameters(), lr=0.05)
        for _ in range(40):
            loss = distillation_loss(head(x), teacher, torch.full((256,), -1), 4.0, 0.5,
                                     top1=top1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        agree[top1] = (head(x).argmax(1) == teacher.argmax(1)).float().mean().item()
    assert agree[1.0] > agree[0.0] + 0.05, agree


def test_distil_takes_both_records_them_and_refuses_a_negative_weight(tmp_path):
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--cache-dir", tmp_path / "cache", "--epochs", "1",
              "--top1", "0.5", "--dkd", "2", "--quiet")
    assert res.returncode == 0, output(res)
    record = RunFolder(out).record.read_text()
    assert '"top1": 0.5' in record and '"dkd": 2.0' in record
    for flag in ("--top1", "--dkd"):
        bad = cli("distil", "--out", tmp_path / "bad", flag, "-1", "--quiet")
        assert bad.returncode != 0 and flag in output(bad) and "Traceback" not in output(bad)


def test_plain_kd_is_the_decoupled_parts_with_the_teachers_own_weight_on_the_others():
    """KL = TCKD + (1 - p_top) x NCKD face by face (Zhao et al. 2022), so --dkd changes the
    loss only where its weight differs from 1 - p_top."""
    torch.manual_seed(3)
    out, teacher = torch.randn(16, 7) * 2, torch.randn(16, 7) * 3
    tckd, nckd, p_top = decoupled_parts(out, teacher, 4.0)
    kl = F.kl_div(F.log_softmax(out / 4, 1), F.log_softmax(teacher / 4, 1), log_target=True,
                  reduction="none").sum(1)
    assert torch.allclose(tckd + (1 - p_top) * nckd, kl, atol=1e-5)
    assert (tckd >= -1e-6).all() and (nckd >= -1e-6).all()
    beta = 8.0
    expected = (tckd + beta * nckd).mean() * 16  # no labels: no cross-entropy term
    assert _loss(out, teacher, 0.0, dkd=beta).item() == pytest.approx(expected.item(), rel=1e-5)
    assert _loss(out, teacher, 0.0, dkd=beta).item() != pytest.approx(
        _loss(out, teacher, 0.0).item(), rel=1e-3)
    # a student with the teacher's ranking among the other classes has no NCKD to pay
    same_others = teacher.clone()
    same_others[torch.arange(16), teacher.argmax(1)] += 5
    assert decoupled_parts(same_others, teacher, 4.0)[1].abs().max() < 1e-5
