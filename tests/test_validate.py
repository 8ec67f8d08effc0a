"""The gate's comparison of an artifact's logits with the FP32 student's."""

import numpy as np

from compress.validate import compare


def test_compare_counts_flips_and_how_close_to_a_tie_they_were():
    fp32 = np.array([[2.0, 1.9, 0.0], [5.0, 0.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]])
    int8 = np.array([[1.9, 2.0, 0.0], [5.0, 0.1, 0.0], [0.0, 2.9, 1.1], [0.4, 0.0, 0.6]])
    out = compare(int8, fp32, teacher_logits=fp32, labels=np.array([0, 0, 1, 2]))
    assert out["n"] == 4 and out["flips"] == 2
    assert out["agreement_with_float"] == 0.5 and out["agreement_with_teacher"] == 0.5
    assert out["accuracy"] == 0.75
    assert out["flip_max_fp32_margin"] == 0.5  # the second flip had a margin of 0.5
    assert 0.9 < out["cosine_with_float"] < 1.0
    same = compare(fp32, fp32, None, None)
    assert same["flips"] == 0 and same["flip_max_fp32_margin"] == 0.0
    assert same["cosine_with_float"] > 0.9999 and "accuracy" not in same
