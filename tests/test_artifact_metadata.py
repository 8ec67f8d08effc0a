"""Every format carries the metadata blob: write, reload, equal; the file says what it is;
the manifest catches a changed file."""

import json

import numpy as np
import pytest
import torch

from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
from motivnet_edge.compress.int8.export import export_fp32
from motivnet_edge.compress.int8.formats import OPS, calibration, quantize
from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import DEFAULT_FORMATS
from motivnet_edge.targets.manifest import Manifest, file_entry
from motivnet_edge.targets.metadata import artifact_files, check_manifest, read_metadata
from motivnet_edge.targets.preprocess import CropSpec, FaceImage
from tests.helpers import TinyNet

SPEC = CropSpec(height=32, width=32, margin=0.1)
BASE = {"labels": ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger"],
        "teacher": {"kind": "test", "sha256": "0" * 64}, "student": {"name": "tiny"}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("artifacts")
    model = TinyNet().eval()
    return model, export_fp32(model, SPEC, out, BASE)


@pytest.mark.parametrize("fmt", list(DEFAULT_FORMATS))
def test_metadata_round_trip(exported, fmt):
    _, paths = exported
    meta = read_metadata(paths[fmt])
    assert meta["format"] == fmt and meta["schema"] == 1
    assert meta["labels"] == BASE["labels"] and meta["teacher"] == BASE["teacher"]
    assert meta["precision"] == "fp32"
    crop = CropSpec.from_dict(meta["crop"])
    assert crop.height == 32 and crop.layout == ("nhwc" if fmt == "tflite" else "nchw")
    # rewriting replaces the blob rather than adding a second one
    embed_metadata(paths[fmt], {**meta, "labels": list(reversed(BASE["labels"]))})
    assert read_metadata(paths[fmt])["labels"] == list(reversed(BASE["labels"]))
    embed_metadata(paths[fmt], meta)


@pytest.mark.parametrize("fmt", list(DEFAULT_FORMATS))
def test_fp32_artifacts_match_torch_in_their_engines(exported, fmt):
    model, paths = exported
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
    expected = model(torch.from_numpy(x)).detach().numpy()
    with load_engine(paths[fmt]) as engine:
        batch = x.transpose(0, 2, 3, 1).copy() if engine.crop.layout == "nhwc" else x
        assert np.allclose(engine.run(batch), expected, atol=1e-3)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_is_recognised_by_reading_the_file(exported, fmt, tmp_path):
    model, paths = exported
    crops = [FaceImage(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))
             for i in range(8)]
    target = tmp_path / paths[fmt].name
    quantize(fmt, calibration(fmt, paths[fmt], model, crops, SPEC), OPS[fmt].recipes[0], target)
    assert inspect_precision(paths[fmt])["precision"] == "fp32"
    info = inspect_precision(target)
    assert info["precision"] == "int8" and info["int8_weight_tensors"] >= 2


def test_missing_metadata_is_named(tmp_path):
    path = tmp_path / "plain.onnx"
    torch.onnx.export(TinyNet().eval(), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False)
    with pytest.raises(MotivnetError, match="carries no 'motivnet_edge' metadata"):
        read_metadata(path)


def test_manifest_sha256_mismatch_is_an_error(exported, tmp_path):
    _, paths = exported
    src = paths["onnx"]
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes())
    Manifest([file_entry(path, "onnx-fp32")]).write(tmp_path)
    assert check_manifest(path) == json.loads((tmp_path / "manifest.json").read_text()
                                              )["files"][0]["sha256"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(MotivnetError, match="sha256"):
        check_manifest(path)
    with pytest.raises(MotivnetError, match="sha256"):
        load_engine(path)


def test_openvino_ir_carries_model_api_model_info(exported):
    """OpenVINO's own tools (Model API, DL Streamer) read labels and preprocessing from the IR's
    ``model_info``; it says what our blob says."""
    import openvino as ov

    _, paths = exported
    model = ov.Core().read_model(str(paths["openvino"]))
    info = {k: model.get_rt_info(["model_info", k]).astype(str) for k in
            ("model_type", "labels", "mean_values", "scale_values", "reverse_input_channels",
             "layout")}
    assert info["model_type"] == "Classification"
    assert info["labels"].split() == BASE["labels"]
    assert [float(v) for v in info["mean_values"].split()] == pytest.approx(SPEC.mean)
    assert [float(v) for v in info["scale_values"].split()] == pytest.approx(SPEC.std)
    assert info["reverse_input_channels"] == "True" and info["layout"] == "NCHW"


@pytest.mark.parametrize("fmt", list(DEFAULT_FORMATS))
def test_format_table_reads_the_input_shape(exported, fmt):
    from motivnet_edge.targets.formats import format_of

    _, paths = exported
    shape = format_of(paths[fmt]).codec().input_shape(paths[fmt])
    assert shape[1:] == ([32, 32, 3] if fmt == "tflite" else [3, 32, 32])


def test_written_files_get_the_usual_mode_not_a_temp_files_0600(tmp_path):
    """Copied to a device, the service user must be able to read what compress wrote."""
    import os

    from motivnet_edge.targets.files import write_json

    old = os.umask(0o022)
    try:
        paths = export_fp32(TinyNet().eval(), SPEC, tmp_path, BASE)
        write_json(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    files = [f for p in paths.values() for f in artifact_files(p)] + [tmp_path / "report.json"]
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o644"}, files


@pytest.mark.parametrize("fmt", list(DEFAULT_FORMATS))
def test_truncated_artifact_is_named_truncated_with_and_without_a_manifest(exported, fmt,
                                                                         tmp_path):
    _, paths = exported
    src = paths[fmt]
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in artifact_files(src):
        (copy / f.name).write_bytes(f.read_bytes())
    path = copy / src.name
    # without a manifest: the parser's failure is reported as a truncated or corrupt file
    cut = artifact_files(path)[-1]
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MotivnetError, match=r"truncated or corrupt") as err:
        load_engine(path, check=False)
    assert path.name in str(err.value) or cut.name in str(err.value)
    # with a manifest: its size and sha256 are checked before any parser reads the file
    cut.write_bytes(whole)
    Manifest([file_entry(path, "x")]).write(copy)
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MotivnetError, match=rf"{cut.name} is .* bytes.*: it is truncated"):
        load_engine(path)


def test_unreadable_artifact_names_the_user(exported, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    _, paths = exported
    path = tmp_path / paths["onnx"].name
    path.write_bytes(paths["onnx"].read_bytes())
    path.chmod(0)
    with pytest.raises(MotivnetError, match="not readable by"):
        read_metadata(path)


def test_an_artifact_every_user_may_change_is_refused(tmp_path):
    import os

    from tests.helpers import onnx_artifact

    path = onnx_artifact(tmp_path)
    assert read_metadata(path)["precision"] == "fp32"
    os.chmod(path, 0o666)
    with pytest.raises(MotivnetError, match="writable by every user"):
        load_engine(path)


def _with_raw_metadata(path, value: str) -> None:
    import onnx

    from motivnet_edge.targets.formats import METADATA_KEY

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = value
    onnx.save(model, str(path))


@pytest.mark.parametrize("raw, named", [
    ("null", "not a JSON object"),
    ('{"schema": 1, "labels": 7, "crop": {}, "precision": "fp32", "format": "onnx"}',
     "'labels'"),
    ('{"schema": 1, "labels": ["Neutral"], "crop": {"margin": NaN}, "precision": "fp32", '
     '"format": "onnx"}', "'margin'"),
    ('{"schema": 1, "labels": ["Neutral"], "crop": 5, "precision": "fp32", "format": "onnx"}',
     "'crop'"),
], ids=["null", "labels-7", "margin-nan", "crop-5"])
def test_bad_metadata_inside_an_artifact_is_named_at_load(tmp_path, raw, named):
    from tests.helpers import onnx_artifact

    path = onnx_artifact(tmp_path)
    _with_raw_metadata(path, raw)
    with pytest.raises(MotivnetError, match=named):
        read_metadata(path)


@pytest.mark.parametrize("manifest", [
    {"files": None},
    {"files": [{"path": "student-fp32.onnx", "sha256": "0" * 64, "bytes": "10"}]},
    {"files": [{"path": "student-fp32.onnx", "sha256": "0" * 64, "bytes": 10,
                "companions": [{"path": 3}]}]},
], ids=["files-null", "bytes-string", "bad-companion"])
def test_a_malformed_manifest_is_named(tmp_path, manifest):
    from tests.helpers import onnx_artifact

    path = onnx_artifact(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MotivnetError, match="manifest .*manifest.json"):
        check_manifest(path)


def test_crop_values_that_break_at_cut_time_are_refused_when_the_artifact_loads(tmp_path):
    """A template that loads (five finite points) but cannot align a face: the daemon would
    start and die at the first face; the engine refuses it at load, naming the artifact."""
    from tests.helpers import onnx_artifact

    path = onnx_artifact(tmp_path, region="aligned")
    meta = read_metadata(path)
    meta["crop"]["template"] = [[1e30, 1e30]] * 5
    embed_metadata(path, meta)
    assert read_metadata(path)["crop"]["template"][0] == [1e30, 1e30]  # passes the load
    with pytest.raises(MotivnetError, match=r"student-fp32.onnx: its crop spec cannot cut"):
        load_engine(path)
    meta["crop"].update(height=100000, width=100000, template=[])  # 30 GB a face: refused
    with pytest.raises(MotivnetError, match="at most 4096"):
        CropSpec.from_dict(meta["crop"])


def test_a_tflite_files_metadata_that_is_not_utf8_is_named(exported, tmp_path):
    from motivnet_edge.targets.formats import METADATA_KEY

    _, paths = exported
    data = bytearray(paths["tflite"].read_bytes())
    at = data.find(b'"labels"')  # inside our JSON blob
    assert at > 0 and data.find(METADATA_KEY.encode()) > 0
    data[at + 1] = 0xFF  # a byte that is never UTF-8
    path = tmp_path / paths["tflite"].name
    path.write_bytes(bytes(data))
    with pytest.raises(MotivnetError, match=r"metadata is not UTF-8 text \(byte \d+\)"):
        read_metadata(path)
