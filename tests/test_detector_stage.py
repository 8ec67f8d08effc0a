"""``motivnet-edge detector``: YuNet made into every engine's files, gated against OpenCV's and
written as a folder with its manifest that the daemon's detector takes; a changed file or a
failed gate is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from motivnet_edge.compress.detector_stage import stage_detector
from motivnet_edge.edge.data.scenes import gate_frames
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.yunet import SHIPPED_YUNET, TFLITE_ROLE, folder_files
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.manifest import Manifest


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector")
    frames, what = gate_frames(None, None, 12)
    rows, ok = stage_detector(out, frames, SHIPPED_YUNET, what)
    assert ok, rows
    return out


@pytest.mark.slow
def test_the_folder_is_gated_and_every_engine_runs_it_as_opencv_runs_the_original(folder):
    manifest = Manifest.read(folder)
    assert {e["role"] for e in manifest.files} == {"detector-onnx", "detector-tflite"}
    assert manifest.info["frames_from"].endswith("(plumbing only)")
    frame = gate_frames(None, None, 3)[0][2]
    want = [f.box for f in FaceDetector(engine="opencv").detect(frame)]
    assert want
    for engine in ("onnxruntime", "openvino", "litert"):
        got = [f.box for f in FaceDetector(model=str(folder), engine=engine).detect(frame)]
        assert got == want, engine
    # auto: a detector folder runs in the classifier's engine, as the shipped one does
    assert FaceDetector(model=str(folder), prefer="onnxruntime").engine == "onnxruntime"


@pytest.mark.slow
def test_a_changed_file_in_the_folder_is_refused_by_name(folder, tmp_path):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "copy")
    path = folder_files(copy, TFLITE_ROLE)[(320, 256)]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MotivnetError, match=f"{path.name}: sha256 .* does not match"):
        FaceDetector(model=str(copy), engine="litert").detect(
            np.zeros((240, 320, 3), np.uint8))


@pytest.mark.slow
def test_a_file_that_fails_its_gate_is_rejected_and_the_command_exits_1(tmp_path):
    """A YuNet whose box regression is scaled (boxes grow by e^0.5 ~ 1.6x) still runs but
    finds other boxes than the published one: every file made from it and held to the
    published file fails, is listed as rejected, and the command says so with exit 1."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(SHIPPED_YUNET))
    made = {n.output[0]: n for n in model.graph.node}
    for out in ("bbox_8", "bbox_16", "bbox_32"):  # Conv -> Transpose -> Reshape
        conv = made[made[made[out].input[0]].input[0]]
        assert conv.op_type == "Conv"
        weight = next(i for i in model.graph.initializer if i.name == conv.input[2])
        bias = numpy_helper.to_array(weight).copy()
        bias[2:] += 0.5  # log width and height
        weight.CopyFrom(numpy_helper.from_array(bias, weight.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "detector", "--out",
                          str(tmp_path / "out"), "--model", str(broken), "--reference",
                          str(SHIPPED_YUNET), "--frames", "6"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "FAILED" in res.stdout and "Traceback" not in res.stderr
    roles = {e["role"] for e in json.loads((tmp_path / "out/manifest.json").read_text())["files"]}
    assert roles == {"rejected-detector-onnx", "rejected-detector-tflite"}


def test_a_missing_photo_folder_is_named(tmp_path):
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "detector", "--out",
                          str(tmp_path / "o"), "--photos", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "--photos" in res.stderr and "nowhere" in res.stderr
    assert "Traceback" not in res.stderr
