"""The gate's comparison of an artifact's logits with the FP32 student's."""

import numpy as np
import pytest

from motivnet_edge.compress.fidelity import Gate, compare
from motivnet_edge.targets.classifier_spec import OutputLayout
from motivnet_edge.targets.formats import artifact_name


def test_compare_counts_flips_and_how_close_to_a_tie_they_were():
    fp32 = np.array([[2.0, 1.9, 0.0], [5.0, 0.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]])
    int8 = np.array([[1.9, 2.0, 0.0], [5.0, 0.1, 0.0], [0.0, 2.9, 1.1], [0.4, 0.0, 0.6]])
    out = compare(int8, fp32, teacher_logits=fp32, labels=np.array([0, 0, 1, 2]))
    assert out["n"] == 4 and out["flips"] == 2
    assert out["agreement_with_float"] == 0.5 and out["agreement_with_teacher"] == 0.5
    assert out["accuracy"] == 0.75
    assert out["flip_max_float_margin"] == 0.5  # the second flip had a margin of 0.5
    assert 0.9 < out["cosine_with_float"] < 1.0
    same = compare(fp32, fp32, None, None)
    assert same["flips"] == 0 and same["flip_max_float_margin"] == 0.0
    assert same["cosine_with_float"] > 0.9999 and "accuracy" not in same


def test_gate_refuses_a_confident_flip_that_agreement_alone_would_let_through():
    from motivnet_edge.compress.fidelity import Gate

    fp32 = np.zeros((200, 3))
    fp32[:, 0] = 4.0  # every crop: class 0, margin 4
    near_tie, confident = fp32.copy(), fp32.copy()
    near_tie[0] = fp32[0] = [1.0, 0.9, 0.0]  # fp32 margin 0.1
    near_tie[0] = [0.9, 1.0, 0.0]  # flipped a near tie
    confident[1] = [0.0, 4.0, 0.0]  # flipped a sure decision
    gate = Gate(agreement=0.99, max_flip_margin=1.0)
    tie_scores = compare(near_tie, fp32, None, None)
    sure_scores = compare(confident, fp32, None, None)
    assert tie_scores["agreement_with_float"] == sure_scores["agreement_with_float"] == 0.995
    assert gate.passes(tie_scores) and not gate.passes(sure_scores)
    assert gate.rank(tie_scores) > gate.rank(sure_scores)
    assert not Gate(agreement=0.999).passes(tie_scores)
    assert not Gate(max_flip_margin=5.0).passes(sure_scores)  # its KL: 0.0192 of 0.005
    assert Gate(max_flip_margin=5.0, max_kl=0.05).passes(sure_scores)
    assert gate.to_dict() == {"agreement_with_float": 0.99, "tie_margin": 0.5,
                              "max_kl_from_float": 0.005, "max_flip_float_margin": 1.0,
                              "values_max_mae": 0.05, "values_min_ccc": 0.95}


def _undecided_student(n: int = 1000, seed: int = 0):
    """Float logits of a student of a soft teacher: a tenth of its faces near ties (top-2
    margin below 0.05), the rest decided (margin 1..3), and INT8 noise of 0.03 on every logit."""
    rng = np.random.default_rng(seed)
    fp32 = rng.normal(0, 0.3, (n, 7))
    fp32[:, 0] += rng.uniform(1.0, 3.0, n) + fp32.max(1)
    tie = np.arange(n) < n // 10
    fp32[tie, 1] = fp32[tie, 0] - rng.uniform(0, 0.05, tie.sum())
    return fp32, fp32 + rng.normal(0, 0.03, fp32.shape)


def test_the_gate_counts_agreement_on_the_faces_the_float_source_decided():
    fp32, int8 = _undecided_student()
    scores = compare(int8, fp32, None, None)
    assert scores["agreement_with_float"] < 0.99  # near ties flipped: the old rule refused
    assert all(b["flips"] == 0 for b in scores["flips_by_margin"][1:])  # every flip a tie
    assert 0.03 < scores["int8_margin_noise"] < 0.2  # two logits' noise, 99th percentile
    assert scores["decided"]["agreement"] == 1.0 and 850 < scores["decided"]["n"] < 950
    assert scores["kl_from_float"] < 1e-3 and Gate().passes(scores)
    # damage on every face (one channel's scale off): KL and the decided faces both see it
    hurt = int8.copy()
    hurt[:, 1] = hurt[:, 1] * 4 + 1.5
    bad = compare(hurt, fp32, None, None)
    assert bad["decided"]["margin"] == 0.5  # its noise is larger: capped by tie_margin
    assert bad["kl_from_float"] > 0.005 and not Gate().passes(bad)
    assert bad["decided"]["agreement"] < 0.99 and not Gate(max_kl=10).passes(bad)


def test_the_gate_holds_valence_and_arousal_to_their_float_source():
    """Rows of 3 class logits, then valence and arousal: classes that agree are not enough
    when a continuous output drifts (MAE) or loses its shape (CCC)."""
    layout = OutputLayout.appended(3, {"valence": (-1, 1), "arousal": (-1, 1)})
    rng = np.random.default_rng(0)
    source = np.concatenate([np.tile([4.0, 0, 0], (200, 1)), rng.uniform(-0.8, 0.8, (200, 2))],
                            1)
    close, shifted, flat = source.copy(), source.copy(), source.copy()
    close[:, 3:] += rng.normal(0, 0.01, (200, 2))
    shifted[:, 3] += 0.1  # valence 0.1 off everywhere: CCC still high, MAE not
    flat[:, 4] = source[:, 4] * 0.2  # arousal squashed: small MAE, low concordance
    gate = Gate()
    scores = {name: compare(rows, source, None, None, layout)
              for name, rows in (("close", close), ("shifted", shifted), ("flat", flat))}
    assert scores["close"]["values"]["valence"]["ccc"] > 0.99 and gate.passes(scores["close"])
    assert scores["shifted"]["values"]["valence"]["mae"] == pytest.approx(0.1, abs=1e-6)
    assert not gate.passes(scores["shifted"])
    assert scores["flat"]["values"]["arousal"]["ccc"] < 0.5 and not gate.passes(scores["flat"])
    assert Gate(value_mae=0.2, value_ccc=0.2).passes(scores["shifted"])
    assert scores["close"]["agreement_with_float"] == 1.0  # the classes alone would pass


def _report(agreement: float) -> dict:
    row = {"format": "onnx", "precision": "int8-weights", "bytes": 2_600_000, "flips": 0,
           "agreement_with_float": 1.0, "agreement_with_teacher": agreement,
           "cosine_with_float": 0.9999, "status": "ok", "flip_max_float_margin": 0.0}
    return {"artifacts": {artifact_name("student", "int8", "onnx"): row}, "passed": True,
            "heldout_crops": 102,
            "student": {"name": "mobilenetv4_conv_small", "input": 112,
                        "agreement_with_teacher": agreement}}


def test_report_warns_when_the_gate_passes_a_student_that_learnt_little():
    import io

    from motivnet_edge.compress.gate.report import print_report

    weak, good = io.StringIO(), io.StringIO()
    print_report(_report(0.34), weak)
    print_report(_report(0.99), good)
    assert "gate PASSED" in weak.getvalue() and "gate PASSED" in good.getvalue()
    assert "keeps little of the teacher" in weak.getvalue()
    assert "keeps little" not in good.getvalue()
    assert "weights-only INT8" in good.getvalue()
    assert artifact_name("student", "int8", "onnx") in good.getvalue()


def test_the_weak_student_hint_and_the_gate_line_say_what_is_true_of_the_run():
    import io

    from motivnet_edge.compress.gate.report import print_report

    def said(report: dict) -> str:
        out = io.StringIO()
        print_report(report, out)
        return out.getvalue()

    scratch, imagenet = _report(0.34), _report(0.34)
    scratch["student"].update(weights=None, epochs=4)
    imagenet["student"].update(weights="imagenet", epochs=7)
    assert "--student-weights imagenet" in said(scratch)
    hint = said(imagenet)
    assert "--student-weights" not in hint and "--preset patient" in hint and "7 epochs" in hint
    assert "gate PASSED (onnx)" in hint
    failed = _report(0.99)
    row = dict(failed["artifacts"][artifact_name("student", "int8", "onnx")], status="REJECTED",
               format="openvino")
    failed["artifacts"][artifact_name("student", "int8", "openvino")] = row
    failed["passed"] = False
    assert "gate FAILED (passed: onnx; failed: openvino)" in said(failed)


def test_flips_by_margin_add_up_to_the_flips_when_the_float_source_has_ties():
    """An int8 output grid gives exact ties: the bins count a flip as the flips do (the float
    source's decision is its first largest logit)."""
    fp32 = np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 2.0], [3.0, 0.0, 0.0]] * 10)
    int8 = np.array([[0.9, 1.0, 0.0], [2.0, 0.0, 2.1], [3.0, 0.1, 0.0]] * 10)
    scores = compare(int8, fp32, None, None)
    assert scores["flips"] == 20
    assert sum(b["flips"] for b in scores["flips_by_margin"]) == 20
    assert scores["flips_by_margin"][0] == {"from": 0.0, "faces": 20, "flips": 20}
