"""ONNX Runtime's histogram calibration holds every activation of every calibration input: the
chain measures what one input makes and calibrates a histogram recipe on the inputs that fit."""

import onnx
import pytest
import torch

from motivnet_edge.compress.int8.onnx_ops import activation_bytes, histogram_crops
from tests.helpers import TinyNet


def _graph(tmp_path, side: int):
    path = tmp_path / f"tiny{side}.onnx"
    torch.onnx.export(TinyNet().eval(), (torch.zeros(1, 3, side, side),), str(path),
                      input_names=["input"], dynamo=False)
    return onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph


def test_activation_bytes_grow_with_the_input_area(tmp_path):
    small, large = activation_bytes(_graph(tmp_path, 32)), activation_bytes(_graph(tmp_path, 64))
    # the first conv alone: 8 channels at 16 x 16, float32
    assert small >= 4 * 8 * 16 * 16
    assert large / small == pytest.approx(4.0, rel=0.05)  # pooled and linear tensors are tiny


def test_histogram_calibration_keeps_the_crops_that_fit():
    mb = 2 ** 20
    assert histogram_crops(4 * mb, 300, budget=4096 * mb) == 300  # a small student: all
    assert histogram_crops(64 * mb, 300, budget=4096 * mb) == 64  # MaxViT at 128 px
    assert histogram_crops(10_000 * mb, 300, budget=4096 * mb) == 16  # never fewer than 16
    assert histogram_crops(0, 5) == 5
