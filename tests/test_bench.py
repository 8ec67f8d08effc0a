"""motivnet-edge bench: one table and plot from a small real run, failing rows kept with their
status, the --gate exit code, and results of two devices gathered through a real broker."""

import itertools
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from motivnet_edge.compress.artifacts import embed_metadata
from motivnet_edge.compress.int8.export import export_fp32
from motivnet_edge.compress.int8.formats import OPS, calibration, quantize
from motivnet_edge.targets.formats import artifact_name
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import CropSpec, FaceImage
from tests.helpers import TinyNet, write_faces

SPEC = CropSpec(height=32, width=32, margin=0.15)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A folder of real artifacts (FP32 in three formats, INT8 ONNX), a teacher exported as
    ONNX with its spec file, and labelled face photos."""
    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model = TinyNet().eval()
    folder = root / "artifacts"
    paths = export_fp32(model, SPEC, folder, {"labels": list(AFFECTNET7)})
    crops = [FaceImage(np.random.default_rng(i).integers(0, 255, (40, 40, 3), np.uint8))
             for i in range(16)]
    int8 = folder / artifact_name("student", "int8", "onnx")
    quantize("onnx", calibration("onnx", paths["onnx"], model, crops, SPEC),
             OPS["onnx"].recipes[0], int8)
    embed_metadata(int8, {**read_metadata(paths["onnx"]), "precision": "int8"})
    teacher = root / "teacher.onnx"
    torch.onnx.export(TinyNet().eval(), (torch.zeros(1, 3, 32, 32),), str(teacher),
                      input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    spec = root / "teacher.yaml"
    spec.write_text(yaml.safe_dump({"labels": list(AFFECTNET7), "outputs": "logits",
                                    "crop": {"height": 32, "width": 32}}))
    photos = root / "faces"
    for i, path in enumerate(write_faces(photos / "x", 12, seed=3)):
        label = AFFECTNET7[i % 7].lower()
        (photos / label).mkdir(exist_ok=True)
        path.rename(photos / label / path.name)
    (photos / "x").rmdir()
    return folder, teacher, spec, photos


def bench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "bench",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout)


QUICK = ["--rounds", "2", "--per-round", "3"]


@pytest.mark.slow
def test_small_run_writes_table_csv_json_and_plot(setup, tmp_path):
    folder, teacher, spec, photos = setup
    out = tmp_path / "out"
    res = bench("--artifacts", folder, "--labelled", photos, "--teacher", teacher,
                "--teacher-spec", spec, "--out", out, "--detectors", *QUICK)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {r["row"]: r for r in results["rows"]}
    detectors = {d["engine"]: d for d in results["detectors"]}
    assert set(detectors) == {"opencv", "onnxruntime", "openvino", "litert"}
    assert all(d["passed"] and d["p50_ms"] > 0 and d["faces"] >= 5 for d in detectors.values())
    assert "| onnxruntime | passed |" in (out / "results.md").read_text()
    assert results["host"]["cpu"] and "flags" in results["host"]
    teacher_row = next(r for r in rows.values() if r["kind"] == "teacher")
    assert teacher_row["status"] == "ok" and teacher_row["agreement_full"] == 1.0
    engines = {(r["name"], r["engine"]) for r in rows.values() if r["kind"] == "artifact"}
    assert ("student-fp32.onnx", "openvino") in engines  # an ONNX file in both engines
    assert ("student-fp32.tflite", "litert") in engines
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["p50_ms"] > 0 and r["p50_ms"] <= r["p99_ms"] and r["threads"] == 1
        assert 0 <= r["top1"] <= 1 and r["faces"] == results["faces"] >= 10
        assert r["load_s"] >= 0 and r.get("rss_mb", 1) > 0
    int8 = next(r for r in rows.values() if r["name"] == "student-int8.onnx"
                and r["engine"] == "onnxruntime")
    assert int8["float_source"] == "student-fp32.onnx" and 0 <= int8["agreement_float"] <= 1
    assert int8["speedup_teacher"] > 0 and int8["rss_mb"] > 10
    lines = (out / "results.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = [line for line in itertools.takewhile(lambda line: line.startswith("|"),
                                                  lines[start:]) if line.startswith("| ")]
    assert "teacher" in table[1]  # the full model first, then sorted by latency
    p50 = [float(line.split("|")[8].split()[0]) for line in table[2:]]
    assert p50 == sorted(p50)
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert len(csv_rows) == len(rows) + 1 and csv_rows[0].startswith("row,kind")
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_broken_artifact_is_a_failed_row_and_the_run_goes_on(setup, tmp_path):
    import shutil

    folder, *_ = setup
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    broken = copy / artifact_name("student", "fp32", "tflite")
    broken.write_bytes(broken.read_bytes()[:500])
    res = bench("--artifacts", copy, "--out", tmp_path / "out", "--no-rss", *QUICK)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    bad = [r for r in rows if r["name"] == broken.name]
    assert bad and all(r["status"].startswith("failed:") and "truncated or corrupt" in
                       r["status"] for r in bad)
    assert sum(r["status"] == "ok" for r in rows) >= 4
    assert broken.name in (tmp_path / "out" / "results.md").read_text()


def test_one_file_under_two_specs_is_two_rows_and_a_failed_one_shows_no_figures(setup,
                                                                                 tmp_path):
    folder, teacher, spec, _ = setup
    wrong = tmp_path / "wrong-size.yaml"
    wrong.write_text(yaml.safe_dump({"labels": list(AFFECTNET7), "outputs": "logits",
                                     "crop": {"height": 48, "width": 48}}))
    res = bench("--artifacts", folder, "--out", tmp_path / "out", "--no-rss", *QUICK,
                "--baseline", teacher, "--baseline-spec", spec,
                "--baseline", teacher, "--baseline-spec", wrong)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [r for r in json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
            if r["kind"] == "baseline"]
    assert len(rows) == 2 and len({r["row"] for r in rows}) == 2
    ok = next(r for r in rows if spec.name in r["name"])
    failed = next(r for r in rows if wrong.name in r["name"])
    assert ok["status"] == "ok" and ok["p50_ms"] > 0 and ok["top1"] is not None
    assert failed["status"].startswith("failed")
    assert not any(failed.get(k) for k in ("top1", "p50_ms", "load_s", "throughput_b8"))


@pytest.mark.slow
def test_gate_exits_non_zero_when_a_row_misses_it(setup, tmp_path):
    folder, *_ = setup
    res = bench("--artifacts", folder, "--out", tmp_path / "out", "--no-rss",
                "--gate", "min_agreement=0.5,max_p50_ms=0.000001", *QUICK)
    assert res.returncode == 1, res.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert all(r["status"].startswith("below gate: p50_ms") for r in rows)
    assert "FAILED by" in res.stdout
    bad = bench("--artifacts", folder, "--gate", "fastest=1")
    assert bad.returncode == 2 and "unknown key 'fastest'" in bad.stderr


def test_collect_merges_two_devices_through_a_real_broker(tmp_path, broker):
    from argparse import Namespace

    from motivnet_edge.benchmarks.fleet import collect, publish

    def results(p50: float) -> dict:
        return {"host": {"cpu": "test cpu", "cores": 2, "arch": "x86_64", "flags": ["avx2"],
                         "accelerator": "none", "os": "Linux"},
                "faces": 10, "faces_source": "test", "rows": [
                    {"row": "student-int8.onnx [onnxruntime/cpu/int8]", "kind": "artifact",
                     "name": "student-int8.onnx", "engine": "onnxruntime", "device": "cpu",
                     "precision": "int8", "status": "ok", "p50_ms": p50, "top1": 0.5,
                     "agreement_float": 0.99}]}

    url = f"mqtt://127.0.0.1:{broker.port}"
    for device, p50 in (("pi5", 4.0), ("jetson", 0.8)):
        publish(results(p50), Namespace(publish=url, mqtt_config=None, device_name=device))
    out = tmp_path / "fleet"
    assert collect(Namespace(broker=url, mqtt_config=None, wait=1.5, out=out)) == 0
    fleet = json.loads((out / "fleet.json").read_text())
    assert sorted(fleet["devices"]) == ["jetson", "pi5"]
    (row,) = fleet["rows"]
    assert row["pi5"]["p50_ms"] == 4.0 and row["jetson"]["p50_ms"] == 0.8
    md = (out / "fleet.md").read_text()
    assert "jetson p50 ms" in md and "pi5 p50 ms" in md
    assert (out / "fleet.png").is_file()


def test_old_benchmark_options_are_folded_into_bench():
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "bench", "--help"],
                         capture_output=True, text=True, timeout=120)
    for option in ("--e2e", "--video", "--frames", "--haar-scale", "--python", "--data",
                   "--full-model", "--speed-only", "--baseline", "--publish", "--gate"):
        assert option in res.stdout, option


@pytest.mark.slow
def test_e2e_gives_cpu_per_frame_and_compares_each_detector_with_opencvs(tmp_path, capsys):
    """bench --e2e's cases on the shipped INT8 ONNX file: YuNet in OpenCV, in ONNX Runtime one
    frame at a time, overlapped on every frame and on every third, and Haar, each with its CPU
    time per frame, detection share and the share of frames whose published labels are
    OpenCV-every-frame's (the same on every frame: recorded footage runs on its own clock)."""
    import argparse

    from motivnet_edge.benchmarks.e2e import run_e2e
    from motivnet_edge.edge.shipped import default_model
    from motivnet_edge.targets.manifest import Manifest

    name = "student-int8.onnx"
    (tmp_path / "model").mkdir()
    shutil.copy(default_model() / name, tmp_path / "model" / name)
    Manifest.read(default_model()).only([name]).write(tmp_path / "model")
    args = argparse.Namespace(artifacts=tmp_path / "model", python=None, video=None, frames=24,
                              haar_scale=None, threads=1)
    rows = {r["detector"]: r for r in run_e2e(args)}
    assert set(rows) == {"yunet/opencv", "yunet/onnxruntime", "yunet/onnxruntime overlap",
                         "yunet/onnxruntime every 3 overlap", "haar/opencv"}, rows
    for r in rows.values():
        assert r["status"] == "ok" and r["cpu_ms_per_frame"] > 0 and r["faces"] > 0, r
        assert 0 < r["detect_share"] < 1
    assert rows["yunet/opencv"]["same_labels"] == 1.0
    for name in ("yunet/onnxruntime", "yunet/onnxruntime overlap"):
        assert rows[name]["same_labels"] >= 0.95, rows  # the same faces, the same labels
    assert "CPU ms/frame" in capsys.readouterr().out
