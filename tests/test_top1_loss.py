"""The teacher's top-1 as a hard target (``--top1``): its cross-entropy is added to the KL term
on every face, labelled or not, with or without continuous outputs behind the classes."""

import pytest
import torch
import torch.nn.functional as F

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


def test_distil_takes_top1_records_it_and_refuses_a_negative_weight(tmp_path):
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--cache-dir", tmp_path / "cache", "--epochs", "1",
              "--top1", "0.5", "--quiet")
    assert res.returncode == 0, output(res)
    assert '"top1": 0.5' in RunFolder(out).record.read_text()
    bad = cli("distil", "--out", tmp_path / "bad", "--top1", "-1", "--quiet")
    assert bad.returncode != 0 and "--top1" in output(bad) and "Traceback" not in output(bad)
