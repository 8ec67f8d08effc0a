"""The compress chain from the command line: a small real run end to end, the gate, errors."""

import json
import shutil

import numpy as np
import pytest

from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import DEFAULT_FORMATS, artifact_name, get_format
from motivnet_edge.targets.metadata import DIGEST_KEY, artifact_bytes, read_metadata
from tests.helpers import (
    DISTIL_SMALL,
    SMALL,
    SMALL_GATE,
    bench_module,
    cli,
    output,
    rknn_missing,
)


@pytest.mark.slow
def test_compress_writes_gated_artifacts_report_and_manifest(compressed):
    out, res = compressed
    assert res.returncode == 0, output(res)
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert report["passed"] is True
    int8 = {r["format"] for r in report["artifacts"].values() if r["precision"] == "int8"}
    assert int8 == set(DEFAULT_FORMATS)
    for row in report["artifacts"].values():
        assert row["agreement_with_float"] >= SMALL_GATE or row["precision"] == "fp32"
        assert {"agreement_with_teacher", "cosine_with_float", "bytes"} <= set(row)
    listed = {f["path"]: f for f in manifest["files"]}
    for name in report["artifacts"]:
        assert listed[name]["sha256"] == sha256_file(out / name)
        meta = read_metadata(out / name)
        assert meta["student"]["sha256"] == listed["student.pth"]["sha256"]
        assert meta["teacher"]["sha256"] and meta["recipe"]["name"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert "gate PASSED" in res.stdout


@pytest.mark.slow
def test_gate_rejects_and_marks_an_artifact_that_disagrees(compressed, tmp_path):
    out, res = compressed
    assert res.returncode == 0, output(res)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for fmt in DEFAULT_FORMATS:
        for p in get_format(fmt).files(copy / artifact_name("student", "int8", fmt)):
            p.unlink()
    qat_graph = copy / "work" / "qat" / artifact_name("student", "int8", "onnx")
    before = sha256_file(qat_graph)
    res = cli("quantize", "--out", copy, "--formats", "onnx", "--gate", "1.01",
              "--calibration", "40")
    assert res.returncode == 1
    # the fine-tuning of this student with these settings is kept, not run again: the float
    # source the other formats were gated against stays as it was
    assert sha256_file(qat_graph) == before and "kept from" in res.stderr
    assert (copy / artifact_name("student", "int8", "onnx", "rejected")).is_file()
    assert not (copy / artifact_name("student", "int8", "onnx")).exists()
    trials = json.loads((copy / "work" / "quantize.json").read_text())["onnx"]["trials"]
    assert len(trials) >= 2  # the safer recipes were tried
    res = cli("validate", "--out", copy, "--gate", "1.01")
    assert res.returncode == 1 and "rejected" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(rknn_missing() is not None, reason=str(rknn_missing()))
def test_rknn_is_built_gated_in_rockchips_simulator_and_carries_its_metadata(rknn_run,
                                                                              tmp_path):
    """The small run's student as an RKNN file for an RK3566: built and run in rknn-toolkit2's
    simulator on the held-out crops (its own venv), gated like every INT8 file, its metadata
    beside it and read back; the validate stage reads the simulator's rows; a changed byte is
    refused."""
    from motivnet_edge.targets.formats.rknn_file import inspect

    run, res = rknn_run
    assert res.returncode == 0, output(res)
    rknn = run / artifact_name("student", "int8", "rknn")
    meta = read_metadata(rknn)
    assert meta["format"] == "rknn" and meta["precision"] == "int8"
    assert meta["recipe"]["platform"] == "rk3566" and meta["crop"]["layout"] == "nchw"
    assert rknn.with_suffix(".rknn.json").is_file()
    assert inspect(rknn)["target_platform"] == ["rk3566"]
    trials = json.loads((run / "work" / "quantize.json").read_text())["rknn"]["trials"]
    assert trials[0]["recipe"] == "qat-pt2e" and "decided" in trials[0]  # the QAT graph first
    # one record kept, the kept file's: the losing trials' are pruned
    assert [p.name for p in (run / "work" / "simulated").iterdir()] == [meta[DIGEST_KEY][:32]]
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    rknn = copy / rknn.name
    res = cli("validate", "--out", copy, "--gate", str(SMALL_GATE))
    assert res.returncode == 0, output(res)
    row = json.loads((copy / "report.json").read_text())["artifacts"][rknn.name]
    assert row["engine"] == "simulator" and row["status"] == "ok", row
    assert row["agreement_with_float"] >= SMALL_GATE
    data = bytearray(rknn.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rknn.write_bytes(bytes(data))
    res = cli("validate", "--out", copy, "--gate", str(SMALL_GATE))
    assert res.returncode != 0 and rknn.name in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.skipif(rknn_missing() is not None, reason=str(rknn_missing()))
def test_an_rknn_file_runs_on_other_faces_built_again_from_its_record(rknn_run, tmp_path):
    """Labelled faces and the bench's faces reach an RKNN file by building it again from the
    record its run folder keeps: the labelled evaluation scores it, the bench gives it a row
    marked SIMULATED with accuracy and no latency, and a record that no longer reproduces the
    rows the gate read is refused by name."""
    import cv2
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from motivnet_edge.compress.int8.simulated import RECORD, resimulate, simulated_folder
    from motivnet_edge.edge.data.synthetic import synth_faces
    from motivnet_edge.targets.errors import MotivnetError
    from motivnet_edge.targets.labels import AFFECTNET7
    from motivnet_edge.targets.preprocess import CropSpec

    run, res = rknn_run
    assert res.returncode == 0, output(res)
    rknn = run / artifact_name("student", "int8", "rknn")
    faces = tmp_path / "faces"
    for i, face in enumerate(synth_faces(14, seed=4)):
        (faces / AFFECTNET7[face.label].lower()).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(faces / AFFECTNET7[face.label].lower() / f"{i}.png"), face.image)
    res = cli("validate", "--out", run, "--gate", str(SMALL_GATE), "--labelled-eval", faces)
    assert res.returncode == 0, output(res)
    models = json.loads((run / "report.json").read_text())["labelled"]["models"]
    assert {rknn.name, artifact_name("student", "int8", "onnx")} <= set(models)
    assert 0 <= models[rknn.name]["accuracy"] <= 1
    assert 0 <= models["teacher, mirror image"]["agreement_with_teacher"] <= 1

    res = cli("bench", "--artifacts", run, "--limit", "12", "--no-rss", "--rounds", "1",
              "--per-round", "2", "--out", tmp_path / "bench")
    assert res.returncode == 0, output(res)
    rows = {r["name"]: r for r in json.loads((tmp_path / "bench" / "results.json")
                                             .read_text())["rows"] if r["kind"] == "artifact"}
    row = rows[rknn.name]
    assert row["status"].startswith("SIMULATED") and row["simulated"], row
    assert row["faces"] == 12 and row["device"] == "rk3566 simulator"
    assert "p50_ms" not in row and "rss_mb" not in row
    assert "SIMULATED" in (tmp_path / "bench" / "results.md").read_text()

    source = simulated_folder(run, rknn) / RECORD / "source.onnx"  # its float biases tripled
    graph = onnx.load(str(source))
    for init in graph.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 1:  # the biases
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 3, init.name))
    onnx.save(graph, str(source))
    with pytest.raises(MotivnetError, match=f"{rknn.name}: built again .* does not reproduce"):
        resimulate(run, rknn, np.zeros((2, *CropSpec.from_dict(read_metadata(rknn)["crop"])
                                        .input_shape[1:]), np.float32))


def test_corrupt_teacher_checkpoint_gives_clear_error_and_no_output(tmp_path):
    bad = tmp_path / "MotivNet.pth"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "out"
    res = cli("compress", "--out", out, "--teacher", bad, "--teacher-model", "motivnet-tiny",
              *SMALL)
    assert res.returncode == 2
    assert str(bad) in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() or not any(out.rglob("*.onnx"))


def test_empty_data_folder_gives_clear_error_and_no_output(tmp_path, teacher_file):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--data", tmp_path / "empty", "--cache-dir", tmp_path / "c",
              *DISTIL_SMALL[4:])
    assert res.returncode == 2, res.stderr[-2000:]
    assert "holds no image or video" in res.stderr and "empty" in res.stderr
    assert not out.exists()  # nothing created on a bad argument


def test_faceless_data_gives_clear_error_and_creates_nothing(tmp_path, teacher_file):
    from tests.helpers import blank_image

    (tmp_path / "walls").mkdir()
    for i in range(3):
        blank_image(tmp_path / "walls" / f"wall{i}.png")
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--data", tmp_path / "walls", "--cache-dir", tmp_path / "c",
              *DISTIL_SMALL[4:])
    assert res.returncode == 2, res.stderr[-2000:]
    assert "no face crops found" in res.stderr and "walls" in res.stderr
    assert not out.exists()


def test_a_bad_labelled_eval_is_named_before_any_work(tmp_path, teacher_file):
    from tests.helpers import write_faces

    write_faces(tmp_path / "faces", 2)
    labels = tmp_path / "faces" / "labels.csv"
    labels.write_text("image,emotion\nface000.png,happy\nface001.png,grumpy\n")
    out = tmp_path / "out"
    res = cli("compress", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--data", tmp_path / "faces", "--labelled-eval", labels,
              "--cache-dir", tmp_path / "c", *DISTIL_SMALL[4:])
    assert res.returncode == 2, output(res)
    assert "line 3" in res.stderr and "grumpy" in res.stderr
    assert not out.exists()
    labels.write_text("image,emotion\nface000.png,happy\nnowhere.png,sad\n")
    res = cli("compress", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--data", tmp_path / "faces", "--labelled-eval", labels,
              "--cache-dir", tmp_path / "c", *DISTIL_SMALL[4:])
    assert res.returncode == 2 and "nowhere.png" in res.stderr, output(res)
    assert not out.exists()


def test_stage_without_previous_stage_names_what_to_run(tmp_path):
    res = cli("export", "--out", tmp_path)
    assert res.returncode == 2 and "motivnet-edge distil" in res.stderr


@pytest.mark.slow
def test_calibration_data_becomes_the_gate_domain(tmp_path, teacher_file):
    from motivnet_edge.compress.distil.distilled import load_distilled
    from tests.helpers import write_faces

    calib = tmp_path / "site"
    write_faces(calib, 30, seed=11)
    out = tmp_path / "out"
    res = cli("distil", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--cache-dir", tmp_path / "c", "--calibration-data", calib,
              *SMALL[:6], "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    work = load_distilled(out)
    assert work.run.calibration_data == str(calib)
    assert 20 <= len(work.crops) <= 30  # the site's crops, not the 160 synthetic ones
    assert all(s.startswith(str(calib)) for s in work.crops.sources)
    assert len(work.teacher_logits) == len(work.crops)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(DEFAULT_FORMATS))
def test_weights_only_fallback_is_a_quarter_the_size_and_computes_like_float(
        compressed, tmp_path, fmt):
    from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
    from motivnet_edge.compress.distil.distilled import load_distilled
    from motivnet_edge.compress.fidelity import compare, run_artifact
    from motivnet_edge.compress.int8.formats import OPS

    out, res = compressed
    assert res.returncode == 0, output(res)
    fp32 = out / artifact_name("student", "fp32", fmt)
    made = tmp_path / artifact_name("student", "int8", fmt)
    OPS[fmt].weights_only(fp32, made)
    embed_metadata(made, read_metadata(fp32))
    what = inspect_precision(made)
    assert what["precision"] == "int8-weights", what
    assert what["int8_weight_tensors"] > 0 and what["activation_quantize_ops"] == 0
    assert artifact_bytes(made) < 0.4 * artifact_bytes(fp32)
    crops = load_distilled(out).val()[0]
    float_logits, _ = run_artifact(fp32, crops, check=False)
    logits, _ = run_artifact(made, crops, check=False)
    scores = compare(logits, float_logits, None, None)
    assert scores["cosine_with_float"] > 0.999, scores


@pytest.mark.slow
def test_distillation_is_deterministic_for_a_seed(tmp_path, teacher_file):
    """docs/compress.md says training is deterministic for a given seed on one CPU: check it."""
    shas = []
    for run in ("a", "b"):
        out = tmp_path / run
        res = cli("distil", "--out", out, "--teacher", teacher_file, "--teacher-model",
                  "motivnet-tiny", "--cache-dir", tmp_path / "cache", *DISTIL_SMALL[:6],
                  "--student", "mobilenetv3_small_100", "--size", "48", "--seed", "3",
                  "--quiet")
        assert res.returncode == 0, output(res)
        shas.append(sha256_file(out / "student.pth"))
    assert shas[0] == shas[1]


@pytest.mark.slow
def test_the_selection_figures_and_the_curve_of_a_run(compressed, tmp_path):
    from motivnet_edge.compress.distil.data import CropSet, split_index
    from motivnet_edge.compress.distil.selection import held_out_halves
    from tests.helpers import write_faces

    out, res = compressed
    assert res.returncode == 0, output(res)
    history = json.loads((out / "work" / "history.json").read_text())["history"]
    assert {"select_agreement", "untouched_agreement", "select_kl"} <= set(history[-1])
    onnx = artifact_name("student", "int8", "onnx")
    figures = tmp_path / "agreement.json"
    run = bench_module("agreement", "--run", out, out / onnx, "--json", figures,
                       "--mirror-average", "--jitter", "0.0001")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(figures.read_text())
    assert 0 < result["groups"]["select"] < result["faces"]
    row = result["rows"][str(out / onnx)]
    averaged = result["rows"][f"{out / onnx} (with its mirror image)"]
    assert 0 <= averaged["select_agreement"] <= 1
    # face by face against the first row: the faces only one of the two agrees on make up the
    # difference of their agreements
    pair = result["paired"][f"{out / onnx} (with its mirror image)"]
    assert pair["select_only_row"] - pair["select_only_first"] == pytest.approx(
        result["groups"]["select"] * (averaged["select_agreement"] - row["select_agreement"]))
    assert 0 < pair["select_p"] <= 1
    assert f"| {out / onnx} (with its mirror image) | {pair['select_only_row']} / " in run.stdout
    # the teacher against itself: its cached mirror rows, the held-out faces in the same order;
    # a box moved by next to nothing gives the teacher's own answers back
    teacher, mirrored = (np.load(out / "work" / n) for n in ("teacher.npy",
                                                             "teacher-mirrored.npy"))
    own = result["teacher_rows"]
    moved = own["teacher, box moved (jitter 0.0001)"]
    assert moved["select_agreement"] == moved["untouched_agreement"] == 1.0
    assert moved["select_kl"] < 1e-4
    crops = CropSet.load(out / "work" / "crops.npz")
    record = json.loads((out / "work" / "run.json").read_text())
    val = split_index(crops.hashes, record["val_fraction"])[1]
    select = held_out_halves([crops.hashes[i] for i in val])
    n = len(record["classes"])
    same = teacher[val, :n].argmax(1) == mirrored[val, :n].argmax(1)
    assert own["teacher, mirror image"]["select_agreement"] == pytest.approx(same[select].mean())
    # steady faces: those whose teacher answer survives the mirror image
    assert own["teacher, mirror image"]["select_steady_agreement"] == 1.0
    assert row["select_steady_n"] == same[select].sum()
    assert row.get("select_rare_steady_n", 0) + row.get("select_rare_unsteady_n", 0) == \
        row["select_rare_n"]
    bad = bench_module("agreement", "--run", out, "--jitter", "5")
    assert bad.returncode == 2 and "--jitter 5" in bad.stderr
    # labelled photos instead of the held-out faces: one group, the run's teacher on them
    paths = write_faces(tmp_path / "photos", 6, seed=9)
    (tmp_path / "photos" / "labels.csv").write_text(
        "image,emotion\n" + "".join(f"{p.name},happy\n" for p in paths))
    on_photos = bench_module("agreement", "--run", out, out / onnx, "--labelled",
                             tmp_path / "photos" / "labels.csv", "--json", figures)
    assert on_photos.returncode == 0, on_photos.stderr[-2000:]
    photos = json.loads(figures.read_text())
    assert photos["groups"] == {"labelled": photos["faces"]} and photos["faces"] >= 5
    assert photos["teacher_rows"]["teacher, mirror image"]["labelled_steady_agreement"] == 1.0
    assert 0 <= photos["rows"][str(out / onnx)]["labelled_agreement"] <= 1
    # the two halves together are the held-out faces the gate's report measured the file on
    n_select, n_rest = result["groups"]["select"], result["groups"]["untouched"]
    whole = (n_select * row["select_agreement"] + n_rest * row["untouched_agreement"]) / \
        result["faces"]
    report = json.loads((out / "report.json").read_text())
    assert whole == pytest.approx(report["artifacts"][onnx]["agreement_with_teacher"], abs=1e-6)
    plot = tmp_path / "curve.png"
    curve = bench_module("curve", "--run", out, "--plot", plot, "--line", "shipped=0.5")
    assert curve.returncode == 0, curve.stderr[-2000:]
    assert curve.stdout.count("\n| 1 |") == len(history) == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = bench_module("curve", "--run", out, "--line", "shipped=high")
    assert bad.returncode == 2 and "--line 'shipped=high'" in bad.stderr
    assert "Traceback" not in bad.stderr
    # another run beside this one: its history file, its kept weights' figures per epoch
    side = bench_module("curve", "--run", out, "--name", "a", "--plot", plot, "--against",
                        f"b={out / 'work' / 'history.json'}")
    assert side.returncode == 0, side.stderr[-2000:]
    assert "| epoch | a agreement | a KL | b agreement | b KL |" in side.stdout
    first = history[0]  # no weight average in this run: the running weights' figures
    assert "ema_select_agreement" not in first
    assert f"| 1 | {first['select_agreement']:.4f} | {first['select_kl']:.3f} |" in side.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for item in ("b", f"b={out / 'report.json'}"):
        bad = bench_module("curve", "--run", out, "--against", item)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert item.partition("=")[2] or "NAME=PATH" in bad.stderr


@pytest.mark.slow
def test_the_student_pareto_reads_a_made_point_by_the_rule_and_times_its_files(compressed,
                                                                              tmp_path):
    out, res = compressed
    assert res.returncode == 0, output(res)
    student = read_metadata(out / artifact_name("student", "fp32", "onnx"))["student"]
    point = f"{student['name']}:{student['input']}"
    # a point already made is kept: no teacher or photos are read for it
    shutil.copytree(out, tmp_path / "pareto" / point.replace(":", "-"))
    run = bench_module("student_pareto", "--out", tmp_path / "pareto", "--points", point,
                       "--teacher", tmp_path / "none.onnx", "--teacher-spec", "none",
                       "--data", tmp_path, "--rounds", "2", layer="experiments")
    assert run.returncode == 0, run.stderr[-2000:]
    last = json.loads((out / "work" / "history.json").read_text())["history"][-1]
    row = json.loads((tmp_path / "pareto" / "pareto.json").read_text())["rows"][0]
    kept = "ema_" if last.get("weights") == "average" else ""
    assert row["select_agreement"] == round(last[kept + "select_agreement"], 4)
    assert row["weights"] == ("average" if kept else "running")  # the label names those figures
    assert set(row["latency_ms"]) == {f"{p}_{e}" for p in ("int8", "fp32")
                                      for e in ("onnxruntime", "openvino")}
    assert all(ms > 0 for ms in row["latency_ms"].values())
    assert f"| {student['name']} | {student['input']} |" in run.stdout
    assert (tmp_path / "pareto" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    bad = bench_module("student_pareto", "--points", "lite0-112", "--teacher", "t.onnx",
                       "--teacher-spec", "none", "--data", tmp_path, layer="experiments")
    assert bad.returncode == 2 and "'lite0-112' is not STUDENT:SIDE" in bad.stderr
    assert "Traceback" not in bad.stderr
