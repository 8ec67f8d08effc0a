"""The engine and profile tables own what they know: every entry is checked by looping over
the tables (as timm's tests loop over its registry), and a made-up target and engine are each
one table entry, added as docs/architecture.md's recipes say."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from motivnet_edge.benchmarks.rows import artifact_rows
from motivnet_edge.edge.data.synthetic import synth_faces
from motivnet_edge.edge.packaging.bundle import PLATFORMS
from motivnet_edge.targets.engine import ENGINES, EngineEntry, engine_class, load_engine
from motivnet_edge.targets.formats import FORMATS
from motivnet_edge.targets.preprocess import FaceImage, make_inputs
from motivnet_edge.targets.profiles import (
    DEVICE_OS,
    PROFILES,
    Choice,
    HostFacts,
    Profile,
    auto_profile,
    host_facts,
    resolve,
    target_rows,
)
from tests.helpers import onnx_artifact

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_declares_its_devices_options_and_availability(name):
    entry, cls = ENGINES[name], engine_class(name)
    assert cls.name == name and cls.devices, name
    assert dataclasses.is_dataclass(cls.Extra) and cls.Extra() == cls.Extra()
    assert entry.formats and all(f in FORMATS for f in entry.formats)
    here = cls.devices_here()
    assert here is None or set(here) <= set(cls.devices), (name, here)
    assert all(cls.device_label(d) for d in cls.devices)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_is_data_the_tables_can_check(name):
    profile = PROFILES[name]
    assert profile.choices and profile.os in DEVICE_OS
    for c in profile.choices:
        cls = engine_class(c.engine)
        assert c.format in ENGINES[c.engine].formats, (name, c)
        assert c.device_name.lower() in (d.lower() for d in cls.devices), (name, c)
        assert c.extra is None or isinstance(c.extra, cls.Extra), (name, c)
    if profile.host is not None:
        assert isinstance(getattr(HostFacts(), profile.host.fact), str), profile.host
    assert all(w.platform in PLATFORMS for w in profile.vendor_wheels)
    assert (EXAMPLES / f"{name}.yaml").is_file(), f"examples/{name}.yaml is missing"


def test_a_wrong_options_type_is_refused_by_name(tmp_path):
    from motivnet_edge.targets.engine import EngineOptions
    from motivnet_edge.targets.engines.openvino import OpenVinoExtra
    from motivnet_edge.targets.errors import MotivnetError

    path = onnx_artifact(tmp_path)
    with pytest.raises(MotivnetError, match="onnxruntime takes its own options as OrtExtra, "
                                            "not OpenVinoExtra"):
        load_engine(path, "onnxruntime", EngineOptions(extra=OpenVinoExtra(True)))


@pytest.fixture
def made_up(monkeypatch):
    """The recipes: one ENGINES entry for an engine in its own module, one PROFILES entry
    for a target (its example config is what a real one adds beside it)."""
    monkeypatch.setitem(ENGINES, "onnx-reference",
                        EngineEntry("tests.reference_engine", ("onnx",), "compress", ("onnx",)))
    monkeypatch.setitem(PROFILES, "refbox", Profile(
        "refbox", "ONNX's reference evaluator on any CPU", (
            Choice("onnx-reference", "fp32", "onnx"),), auto=5))


def test_a_made_up_engine_and_target_run_through_every_reader_of_the_tables(made_up,
                                                                            tmp_path):
    path = onnx_artifact(tmp_path)
    faces = [FaceImage(f.image) for f in synth_faces(3, seed=1)]
    # the target: resolved by name and chosen by auto (ranked before cpu), listed by targets
    assert resolve("refbox", tmp_path)[:2] == (path, "onnx-reference")
    assert auto_profile(host_facts(), tmp_path) == "refbox"
    row = next(r for r in target_rows(host_facts(), tmp_path) if r["target"] == "refbox")
    assert row["runs_here"] and row["engine"] == "onnx-reference/cpu" and row["auto"]
    # the engine: opens the file and agrees with ONNX Runtime
    with load_engine(path, "onnx-reference") as ref, load_engine(path, "onnxruntime") as ort:
        x = make_inputs(faces, ref.crop)
        np.testing.assert_allclose(ref.run(x), ort.run(x), atol=1e-4)
    # the benchmark's rows take it for every ONNX file
    assert "onnx-reference" in {r.engine for r in artifact_rows(tmp_path, threads=1)}
    del PROFILES["refbox"]
    assert auto_profile(host_facts()) == "cpu"  # the entry gone, the target is too
