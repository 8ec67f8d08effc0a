"""Quantization-aware fine-tuning turns a small model into full-INT8 files in every format,
each agreeing with the fine-tuned model it came from."""

import numpy as np
import pytest
import torch
from torch import nn

from motivnet_edge.compress import qat
from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
from motivnet_edge.compress.int8_stage import _qat_artifact, emulate
from motivnet_edge.compress.validate import compare, run_artifact
from motivnet_edge.targets.formats import FORMATS, artifact_name
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, FaceImage


class SmallNet(nn.Module):
    """Conv-BN-ReLU6 blocks with a depthwise conv and a residual add, like the students."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU6(inplace=True))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU6(inplace=True),
                                nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 7)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.dw(x)
        return self.head(x.mean((2, 3)))


@pytest.mark.slow
def test_qat_makes_full_int8_files_that_agree_with_their_float_source(tmp_path):
    torch.manual_seed(0)
    spec = CropSpec(height=32, width=32, margin=0.0, mean=(127.5,), std=(127.5,))
    rng = np.random.default_rng(0)
    crops = [FaceImage(rng.integers(0, 255, (40, 40, 3), np.uint8)) for i in range(160)]
    model = SmallNet()
    model.train()
    with torch.no_grad():  # BN statistics of this data
        for i in range(0, 160, 32):
            model(torch.from_numpy(np.stack([c.input(spec) for c in crops[i:i + 32]])))
    model.eval()
    with torch.no_grad():
        teacher = model(torch.from_numpy(np.stack([c.input(spec) for c in crops]))).numpy()
    cfg = qat.QatConfig(steps=30, batch=32, lr=1e-4, balance=0.0, augment=0.0)
    prepared, quantizer = qat.finetune(model, spec, crops, teacher * 3, cfg, progress=False)
    folder = tmp_path / "qat"
    folder.mkdir()
    qat.export_onnx_qdq(qat.convert(prepared, fold_weights=True), spec,
                        folder / artifact_name("student", "int8", "onnx"))
    qat.export_tflite(qat.convert(prepared), quantizer, spec,
                      folder / artifact_name("student", "int8", "tflite"))
    held_out = [FaceImage(rng.integers(0, 255, (40, 40, 3), np.uint8)) for _ in range(200)]
    source = emulate(folder / artifact_name("student", "int8", "onnx"), held_out, spec)
    for fmt in FORMATS:
        path = tmp_path / artifact_name("student", "int8", fmt)
        _qat_artifact(fmt, folder, path)
        layout = "nhwc" if fmt == "tflite" else "nchw"
        embed_metadata(path, {"labels": list(AFFECTNET7), "precision": "int8",
                              "crop": {**spec.to_dict(), "layout": layout}})
        what = inspect_precision(path)
        assert what["precision"] == "int8" and what["int8_weight_tensors"] >= 3, (fmt, what)
        logits, _ = run_artifact(path, held_out, check=False)
        scores = compare(logits, source, None, None)
        assert scores["agreement_with_float"] >= 0.95, (fmt, scores)
        assert scores["cosine_with_float"] > 0.99, (fmt, scores)
    # int8 weights stored in the ONNX file, not float ones quantised at run time
    assert inspect_precision(tmp_path / artifact_name("student", "int8", "onnx")
                             )["float_weight_tensors"] == 0
