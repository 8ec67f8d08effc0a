"""Each engine runs each format it supports and agrees with the FP32 source on real face crops
from ../shared/data/faces-dev when present (synthetic faces otherwise); target profiles."""

import json

import numpy as np
import pytest
import torch

from motivnet_edge.compress.distil.data import collect
from motivnet_edge.compress.int8.export import export_fp32
from motivnet_edge.targets.engine import EngineOptions, engines_for, load_engine
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import DEFAULT_FORMATS, artifact_name
from motivnet_edge.targets.preprocess import CropSpec, make_inputs
from motivnet_edge.targets.profiles import (
    PROFILES,
    auto_profile,
    choice_available,
    host_facts,
    profile_status,
    resolve,
)
from tests.conftest import ROOT
from tests.helpers import TinyNet

FACES_DEV = ROOT.parent / "shared" / "data" / "faces-dev" / "images"
SPEC = CropSpec(height=48, width=48, margin=0.15)
# every engine with every format it opens, from the tables
CASES = [(engine, fmt) for fmt in DEFAULT_FORMATS for engine in engines_for(fmt)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(1)
    model = TinyNet().eval()
    paths = export_fp32(model, SPEC, tmp_path_factory.mktemp("a"), {"labels": list("abcdefg")})
    if FACES_DEV.is_dir():
        files = sorted(FACES_DEV.iterdir())[:60]
        folder = tmp_path_factory.mktemp("real")
        for f in files:
            (folder / f.name).symlink_to(f)
        crops = collect([folder], progress=False).crops
    else:
        crops = collect(synthetic=60, progress=False).crops
    x = make_inputs(crops, SPEC)
    expected = model(torch.from_numpy(x)).detach().numpy()
    return paths, crops, expected


@pytest.mark.parametrize("engine,fmt", CASES)
def test_engine_agrees_with_fp32_source_on_face_crops(setup, engine, fmt):
    paths, crops, expected = setup
    with load_engine(paths[fmt], engine, EngineOptions(threads=1)) as eng:
        x = make_inputs(crops, eng.crop)
        out = eng.run(x)
    assert out.shape == expected.shape
    assert np.mean(out.argmax(1) == expected.argmax(1)) >= 0.99
    assert np.allclose(out, expected, atol=1e-3)


def test_openvino_reports_the_precision_it_runs_at(setup):
    paths, _, _ = setup
    with load_engine(paths["openvino"], "openvino", EngineOptions(precision="f32")) as eng:
        assert eng.settings["INFERENCE_PRECISION_HINT"] == "f32"


def test_engine_refuses_a_format_it_cannot_run(setup):
    paths, _, _ = setup
    with pytest.raises(MotivnetError, match="cannot run tflite"):
        load_engine(paths["tflite"], "onnxruntime")


def test_every_profile_says_whether_it_runs_here():
    """A profile runs its first choice this host can run, having named why each earlier one
    cannot; a profile that runs nothing names every choice's reason."""
    facts = host_facts()
    for profile in PROFILES.values():
        choice, reasons = profile_status(profile, facts)
        runnable = [c for c in profile.choices if choice_available(c, facts) is None]
        assert choice == (runnable[0] if runnable else None), profile.name
        skipped = profile.choices[:profile.choices.index(choice)] if choice else profile.choices
        for c in skipped:
            assert any(r.startswith(f"{c.engine}/{c.device_name}: ") for r in reasons), \
                (profile.name, c, reasons)
    assert auto_profile(facts) in PROFILES
    # this machine has no GPU: the Jetson profile must say why not, naming the provider
    if "cuda" not in (facts.devices("onnxruntime") or []):
        choice, reasons = profile_status(PROFILES["jetson"], facts)
        assert choice is None and any("CUDAExecutionProvider" in r for r in reasons)


def test_profile_picks_its_artifact_from_a_compress_folder(tmp_path):
    tflite = tmp_path / artifact_name("student", "int8", "tflite")
    onnx = tmp_path / artifact_name("student", "int8", "onnx")
    tflite.touch()
    path, engine, options, name = resolve("rpi", tmp_path)
    assert path == tflite and engine == "litert" and name == "rpi"
    # the cpu profile prefers ONNX Runtime, and takes LiteRT when the folder has no ONNX file
    assert resolve("cpu", tmp_path)[:2] == (tflite, "litert")
    onnx.touch()
    assert resolve("cpu", tmp_path)[:2] == (onnx, "onnxruntime")
    # a file the manifest lists as rejected by the gate is never picked
    (tmp_path / "manifest.json").write_text(json.dumps({"files": [
        {"path": p.name, "role": role, "sha256": sha256_file(p), "bytes": 0}
        for p, role in ((onnx, "rejected-onnx-int8"), (tflite, "tflite-int8"))]}))
    assert resolve("cpu", tmp_path)[:2] == (tflite, "litert")
    tflite.unlink()
    with pytest.raises(MotivnetError, match="did not pass the gate"):
        resolve("cpu", tmp_path)
    with pytest.raises(MotivnetError, match="unknown target"):
        resolve("toaster", tmp_path)


class BatchOfOne(torch.nn.Module):
    """A graph with its batch of 1 baked into a reshape, as a ViT exported by litert-torch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8 * 8 * 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(1, 8 * 8 * 3))


def test_litert_runs_a_batch_of_one_graph_face_by_face(tmp_path):
    from motivnet_edge.compress.artifacts import embed_metadata
    from motivnet_edge.compress.int8 import tflite_ops

    torch.manual_seed(0)
    model = BatchOfOne().eval()
    spec = CropSpec(height=8, width=8, layout="nchw")
    path = tmp_path / "one.tflite"
    tflite_ops.export(model, spec, path, path.parent)
    embed_metadata(path, {"labels": list("abcdefg"), "crop": {**spec.to_dict(), "layout": "nhwc"},
                          "precision": "fp32"})
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
    with load_engine(path) as eng:
        assert eng.settings["batching"] is False
        out = eng.run(x)
    expected = np.concatenate([model(torch.from_numpy(x[i:i + 1]).permute(0, 3, 1, 2))
                               .detach().numpy() for i in range(3)])
    assert np.allclose(out, expected, atol=1e-4)


def test_rockchip_says_why_its_npu_does_not_run_here():
    """On a host that is no Rockchip board, the rockchip profile names the device tree it
    looked at and what the NPU engine lacks (rknn-toolkit-lite2 on x86; librknnrt.so where the
    wheel is there but Rockchip's library is not)."""
    from motivnet_edge.targets.engines.rknn import LIBRARY_HINT, RknnEngine, runtime_library

    facts = host_facts()
    if "rockchip,rk35" in facts.device_tree_compatible.lower():
        pytest.skip("a Rockchip board")
    choice, reasons = profile_status(PROFILES["rockchip"], facts)
    assert any("/proc/device-tree/compatible" in r for r in reasons), reasons
    assert any(r.startswith("rknn/auto: ") and ("rknn-toolkit-lite2" in r or "librknnrt" in r)
               for r in reasons), reasons
    assert choice is None or choice.engine == "onnxruntime"  # the CPU fallback
    if runtime_library() is None:
        assert RknnEngine.devices_here() is None and "librknnrt.so" in LIBRARY_HINT
