"""The teacher-engines experiment: one exported teacher file run in every engine that opens it,
and artifacts measured against each engine's teacher."""

import numpy as np
import pytest

from motivnet_edge.compress.runfolder import TeacherRecord
from motivnet_edge.experiments.teacher_engines import (
    AVERAGED,
    OPENCV,
    compare,
    engine_teachers,
    plot_matrix,
    report,
)
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, FaceImage
from tests.helpers import bench_module, onnx_artifact


def _record(path, kind="onnx") -> TeacherRecord:
    spec = ClassifierSpec(AFFECTNET7, CropSpec(height=32, width=32, margin=0.15))
    return TeacherRecord({"kind": kind, "file": path.name, "sha256": sha256_file(path)}, "key",
                         spec.to_dict(), str(path))


def test_every_engine_runs_the_teacher_and_each_is_a_reference_for_the_artifacts(tmp_path):
    path = onnx_artifact(tmp_path)  # a float classifier: the engines must agree on it
    teachers = engine_teachers(_record(path))
    assert {"onnxruntime", "openvino", OPENCV} <= set(teachers)
    rng = np.random.default_rng(0)
    faces = [FaceImage(rng.integers(0, 256, (48, 48, 3), np.uint8)) for _ in range(40)]
    select = np.arange(40) < 20
    data = {"faces": faces, "classes": list(AFFECTNET7),
            "groups": {"select": select, "untouched": ~select}}
    result = compare(data, teachers, [path])
    refs = result["references"]
    assert set(refs) == {*teachers, AVERAGED} and set(result["ms_per_face"]) == set(teachers)
    for ref, figs in refs.items():
        rows = figs["rows"]  # the other references and the artifact
        assert f"teacher in {ref}" not in rows and len(rows) == len(teachers) + 1
        for name, row in rows.items():
            assert row["select_agreement"] >= 0.95 and row["untouched_kl"] < 1e-3, (ref, name)
    # the artifact runs in ONNX Runtime: there it is the teacher itself, face for face
    ort = refs["onnxruntime"]["rows"][str(path)]
    assert ort["select_agreement"] == ort["untouched_agreement"] == 1
    assert ort["select_kl"] < 1e-6
    # against another engine it reads as ONNX Runtime's teacher does
    ov = refs["openvino"]["rows"]
    assert ov[str(path)]["select_kl"] == pytest.approx(
        ov["teacher in onnxruntime"]["select_kl"], abs=1e-6)
    summary = {"faces": 40, "groups": {"select": 20, "untouched": 20}, **result}
    text = report(summary)
    assert "Against the teacher in opencv:" in text and f"| {path} |" in text
    plot_matrix(summary, tmp_path / "m.png", "engines")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_a_teacher_no_engine_runs_or_that_is_gone_is_refused_by_name(tmp_path):
    checkpoint = tmp_path / "MotivNet-tiny.pth"
    checkpoint.write_bytes(b"not a model")
    with pytest.raises(MotivnetError, match=r"MotivNet-tiny\.pth is a motivnet model, run in "
                                            r"torch alone"):
        engine_teachers(_record(checkpoint, kind="motivnet"))
    path = onnx_artifact(tmp_path)
    record = _record(path)
    path.unlink()
    with pytest.raises(MotivnetError, match=f"the teacher {path} .* is gone"):
        engine_teachers(record)
    bad = bench_module("teacher_engines", "--run", tmp_path / "none", layer="experiments")
    assert bad.returncode == 2 and "run.json is missing" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_bench_runs_the_teacher_in_the_engine_its_record_names_or_the_one_asked(tmp_path):
    import json
    from argparse import Namespace

    from motivnet_edge.benchmarks.bench import full_model_rows
    from motivnet_edge.compress.runfolder import RunRecord
    from motivnet_edge.compress.settings import StudentConfig, TrainConfig

    path = onnx_artifact(tmp_path)
    teacher = _record(path)
    teacher.identity["engine"] = "openvino"  # distilled from the teacher run in OpenVINO
    run = RunRecord(StudentConfig("efficientnet_lite0", 32), {}, 0.15, 0, 0.1, list(AFFECTNET7),
                    teacher, TrainConfig())
    (tmp_path / "run" / "work").mkdir(parents=True)
    (tmp_path / "run" / "work" / "run.json").write_text(json.dumps(run.to_dict()))
    args = Namespace(teacher=None, teacher_spec=None, teacher_engine=None,
                     artifacts=tmp_path / "run", threads=1, full_model=None)
    engines = {}
    for asked in (None, "onnxruntime", "litert"):
        (row,) = full_model_rows(Namespace(**{**vars(args), "teacher_engine": asked}), {})
        engines[asked] = row.engine, row.status
        if row.status == "ok":
            row.runner.load()
            assert row.runner.settings["engine"] == row.engine
            row.runner.close()
    assert engines[None] == ("openvino", "ok") and engines["onnxruntime"] == ("onnxruntime", "ok")
    assert "engine litert cannot run a onnx file" in engines["litert"][1]
