"""Where a student disagrees with its teacher: on the faces it trained on against those held
out, and whether a class bias (the class-bias experiment) closes the gap."""

import json

import numpy as np
import pytest

from motivnet_edge.benchmarks.agreement import short_names
from motivnet_edge.experiments.class_bias import fit_bias
from motivnet_edge.targets.engine import softmax
from motivnet_edge.targets.formats import artifact_name
from tests.helpers import bench_module, output


def test_a_student_shifted_from_its_teacher_by_a_bias_gets_that_bias_back():
    rng = np.random.default_rng(0)
    teacher = rng.normal(0, 2, (400, 7))
    shift = np.array([1.5, -0.5, 0.0, 0.7, -2.0, 0.3, 0.0])
    bias = fit_bias(teacher + shift, teacher)
    np.testing.assert_allclose(bias, -(shift - shift.mean()), atol=1e-6)


def test_the_bias_gives_the_student_its_teachers_mean_class_probabilities():
    rng = np.random.default_rng(1)
    teacher = rng.normal(0, 2, (300, 5))
    student = 0.6 * teacher + rng.normal(0, 1, (300, 5)) + [2, 0, 0, -1, 0]
    bias = fit_bias(student, teacher)
    assert abs(bias.sum()) < 1e-9
    np.testing.assert_allclose(softmax(student + bias).mean(0), softmax(teacher).mean(0),
                               atol=1e-6)
    assert np.abs(softmax(student).mean(0) - softmax(teacher).mean(0)).max() > 0.05


@pytest.mark.slow
def test_the_experiment_measures_an_artifact_with_and_without_its_bias(compressed, tmp_path):
    out, res = compressed
    assert res.returncode == 0, output(res)
    path = out / artifact_name("student", "int8", "onnx")
    run = bench_module("class_bias", "--run", out, path, "--json", tmp_path / "b.json",
                       layer="experiments")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "b.json").read_text())
    classes = json.loads((out / "work" / "run.json").read_text())["classes"]
    assert list(result["bias"]) == classes and abs(sum(result["bias"].values())) < 1e-3
    assert set(result["rows"]) == {str(path), f"{path} + bias"}
    assert all(0 <= row["select_agreement"] <= 1 for row in result["rows"].values())
    assert f"| {path} + bias |" in run.stdout and "bias fit on the select half" in run.stdout
    bad = bench_module("class_bias", "--run", tmp_path / "none", path, layer="experiments")
    assert bad.returncode == 2 and "run.json is missing" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_training_faces_are_a_third_group_that_leaves_the_held_out_figures_alone(
        compressed, tmp_path):
    from motivnet_edge.compress.distil.data import CropSet, split_index

    out, res = compressed
    assert res.returncode == 0, output(res)
    path = out / artifact_name("student", "int8", "onnx")
    runs = {}
    for name, extra in (("plain", []), ("train", ["--train"])):
        run = bench_module("agreement", "--run", out, path, "--jitter", "0", "--json",
                           tmp_path / f"{name}.json", *extra)
        assert run.returncode == 0, run.stderr[-2000:]
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    crops = CropSet.load(out / "work" / "crops.npz")
    record = json.loads((out / "work" / "run.json").read_text())
    train, val = split_index(crops.hashes, record["val_fraction"])
    both = runs["train"]
    assert both["groups"]["train"] == len(train) and both["faces"] == len(train) + len(val)
    assert {g: both["groups"][g] for g in ("select", "untouched")} == runs["plain"]["groups"]
    plain_row, row = runs["plain"]["rows"][str(path)], both["rows"][str(path)]
    # the same held-out figures (the engine batches the faces differently: to 4 places)
    assert {k: v for k, v in row.items() if not k.startswith("train_")} == pytest.approx(
        plain_row, abs=1e-4, nan_ok=True)
    assert 0 <= row["train_agreement"] <= 1 and "train_kl" in row


def _weights(path, name):
    """The float value of the weight initializer ``name`` of an INT8 ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    node = next(n for n in model.graph.node
                if n.op_type == "DequantizeLinear" and n.input[0] == name)
    scale = values[node.input[1]].astype(np.float64)
    return values[name].astype(np.float64) * scale.reshape([-1] + [1] * (values[name].ndim - 1))


@pytest.mark.slow
def test_a_soup_averages_the_weights_and_of_one_file_is_that_file(compressed, tmp_path):
    import onnx
    from onnx import numpy_helper

    out, res = compressed
    assert res.returncode == 0, output(res)
    path = out / artifact_name("student", "int8", "onnx")
    # a second "student": the first with every conv weight's scales doubled
    model = onnx.load(str(path))
    values = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
             and n.input[0] in values and len(values[n.input[0]].dims) == 4]
    for node in convs:
        init = values[node.input[1]]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))
    doubled = tmp_path / "doubled.onnx"
    onnx.save(model, str(doubled))
    run = bench_module("soup", tmp_path / "soup.onnx", path, doubled, layer="experiments")
    assert run.returncode == 0, run.stderr[-2000:]
    weight = convs[0].input[0]
    before, after = _weights(path, weight), _weights(tmp_path / "soup.onnx", weight)
    step = np.abs(after).max() / 127
    assert np.abs(after - 1.5 * before).max() <= step
    same = bench_module("soup", tmp_path / "same.onnx", path, path, layer="experiments")
    assert same.returncode == 0, same.stderr[-2000:]
    run = bench_module("agreement", "--run", out, path, tmp_path / "same.onnx", "--jitter", "0",
                       "--ensemble", "--by-margin", "--json", tmp_path / "a.json",
                       "--plot", tmp_path / "m.png")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "a.json").read_text())
    rows = list(result["rows"].values())
    assert rows[1]["select_agreement"] == pytest.approx(rows[0]["select_agreement"], abs=0.02)
    assert rows[2]["select_kl"] <= max(rows[0]["select_kl"], rows[1]["select_kl"]) + 1e-9
    for group, n in result["groups"].items():  # the bands split each group's faces
        assert sum(f for _, f in result["margins"][str(path)][group].values()) == n
    assert "By the teacher's margin" in run.stdout
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_soup_of_files_that_are_not_one_student_is_refused_by_name(compressed, tmp_path):
    out, res = compressed
    assert res.returncode == 0, output(res)
    path = out / artifact_name("student", "int8", "onnx")
    other = out / artifact_name("student", "fp32", "onnx")
    bad = bench_module("soup", tmp_path / "s.onnx", path, other, layer="experiments")
    assert bad.returncode == 2 and str(other) in bad.stderr and "graph" in bad.stderr
    assert "Traceback" not in bad.stderr and not list(tmp_path.iterdir())
    bad = bench_module("agreement", "--run", out, path, "--plot", tmp_path / "m.png")
    assert bad.returncode == 2 and "--by-margin" in bad.stderr and not list(tmp_path.iterdir())


def test_rows_of_files_with_one_name_are_told_apart_by_their_folders():
    names = ["out/a/student-fp32.onnx", "out/b/student-fp32.onnx", "x/student-int8.onnx",
             "teacher, mirror image"]
    assert list(short_names(names).values()) == [
        "a/student-fp32.onnx", "b/student-fp32.onnx", "x/student-int8.onnx",
        "teacher, mirror image"]
    assert list(short_names(["a/x.onnx", "b/y.onnx"]).values()) == ["x.onnx", "y.onnx"]
