"""Every artifact checks itself, with or without a manifest beside it: its metadata carries the
digest of its content (``content_sha256``), written by compress and checked at every load, so
one flipped byte in the weights of an ONNX, OpenVINO IR or TFLite file alone is refused with a
message naming the file (exit 2), and the shipped model passes its own check."""

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from motivnet_edge.compress.artifacts import embed_metadata
from motivnet_edge.edge.shipped import default_model
from motivnet_edge.targets.metadata import DIGEST_KEY, content_digest, read_metadata
from tests.bundles import flip_byte
from tests.helpers import write_faces

SHIPPED = default_model()


def lone_artifacts(folder: Path) -> dict[str, Path]:
    """Each format's file alone in a folder of its own (no manifest): the shipped ONNX and
    TFLite files, and an OpenVINO IR converted from the ONNX one with its metadata written."""
    import openvino as ov

    out = {}
    for fmt, name in (("onnx", "student-int8.onnx"), ("tflite", "student-int8.tflite")):
        (folder / fmt).mkdir(parents=True)
        out[fmt] = Path(shutil.copy(SHIPPED / name, folder / fmt / name))
    (folder / "openvino").mkdir()
    xml = folder / "openvino" / "student-int8.xml"
    ov.save_model(ov.convert_model(str(out["onnx"])), str(xml), compress_to_fp16=False)
    meta = {k: v for k, v in read_metadata(out["onnx"]).items()
            if k not in ("schema", "format", DIGEST_KEY)}
    embed_metadata(xml, meta)
    out["openvino"] = xml
    return out


def classify(model: Path, photo: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "classify",
                           "--model", str(model), "--target", target, str(photo)],
                          capture_output=True, text=True, timeout=300)


def test_the_shipped_model_passes_its_own_check():
    for name in ("student-int8.onnx", "student-int8.tflite"):
        meta = read_metadata(SHIPPED / name)  # raises if the content does not match
        assert len(meta[DIGEST_KEY]) == 64


TARGETS = {"onnx": "cpu", "tflite": "rpi", "openvino": "intel-cpu"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(TARGETS))
def test_one_flipped_byte_in_a_lone_file_is_refused_naming_it(tmp_path, fmt):
    photo = write_faces(tmp_path / "photos", 1)[0]
    assert cv2.imread(str(photo)) is not None
    artifact = lone_artifacts(tmp_path / "art")[fmt]
    assert not (artifact.parent / "manifest.json").exists()
    whole = classify(artifact, photo, TARGETS[fmt])
    assert whole.returncode == 0, whole.stderr  # the untouched copy runs
    weights = artifact.with_suffix(".bin") if fmt == "openvino" else artifact
    flip_byte(weights)  # the middle of the file: weights, not the metadata
    res = classify(artifact, photo, TARGETS[fmt])
    assert res.returncode == 2, res.stdout + res.stderr
    assert str(artifact) in res.stderr and "has changed" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_a_changed_label_in_the_metadata_is_refused_too(tmp_path):
    onnx = lone_artifacts(tmp_path)["onnx"]
    data = onnx.read_bytes()
    assert data.count(b'"Happiness"') >= 1  # inside the metadata blob only
    onnx.write_bytes(data.replace(b'"Happiness"', b'"Happyness"', 1))
    with pytest.raises(Exception, match="has changed"):
        read_metadata(onnx)


def test_the_digest_covers_every_file_of_an_ir(tmp_path):
    xml = lone_artifacts(tmp_path)["openvino"]
    from motivnet_edge.targets.formats import format_of

    text = format_of(xml).codec().read(xml)
    before = content_digest(xml, text)
    flip_byte(xml.with_suffix(".bin"), offset=100)
    assert content_digest(xml, text) != before
