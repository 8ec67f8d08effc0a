"""The validate stage: report.json and manifest.json for every artifact of an output folder,
each run in its own engine on the held-out faces against its float source, the teacher and
the labels; with labelled real photos, every model scored on them too."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.data import (
    MIRROR,
    MIRRORED_TEACHER,
    Mirrored,
    crop_hash,
)
from motivnet_edge.compress.distil.distilled import Distilled, load_distilled
from motivnet_edge.compress.distil.teacher_cache import TeacherCache
from motivnet_edge.compress.fidelity import DEFAULT_GATE, Gate, evaluate_artifact, run_artifact
from motivnet_edge.compress.gate.evaluate import labelled_report
from motivnet_edge.compress.inference import (
    FLOAT_SOURCES,
    emulate,
    float_source_logits,
    predict,
    quantize_results,
)
from motivnet_edge.compress.int8.formats import is_simulated
from motivnet_edge.compress.int8.simulated import can_resimulate, load_simulated, resimulate
from motivnet_edge.compress.models.teachers import reload_teacher
from motivnet_edge.targets.continuous import agreement
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import cache_dir, write_json
from motivnet_edge.targets.formats import REJECTED, artifact_name, format_of, is_artifact
from motivnet_edge.targets.manifest import (
    REPORT_ROLE,
    STUDENT_WEIGHTS_ROLE,
    Manifest,
    artifact_role,
    file_entry,
)
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import FaceImage, make_inputs

log = logging.getLogger(__name__)


def labelled_evaluation(w: Distilled, artifacts: list[Path], labelled: Path,
                        progress: bool = True) -> dict:
    """The teacher, the FP32 student and every artifact on labelled real faces."""
    teacher = reload_teacher(w.run.teacher)
    cache = TeacherCache(Path(w.run.teacher_cache or cache_dir() / "teacher"), teacher.key)

    def teacher_logits(faces: list[FaceImage]) -> np.ndarray:
        return cache.logits([crop_hash(f) for f in faces], faces, teacher.predict, progress)

    def mirrored_logits(faces: list[FaceImage]) -> np.ndarray:
        return cache.logits([crop_hash(f) + MIRROR for f in faces], Mirrored(faces),
                            teacher.predict, progress, desc="teacher, mirrored")

    classes = w.run.layout.class_outputs
    # the teacher against itself on the mirror images: how steady the answer agreed with is
    models = {"teacher": lambda faces: classes(teacher_logits(faces)),
              MIRRORED_TEACHER: lambda faces: classes(mirrored_logits(faces)),
              w.folder.student_weights.name: lambda faces: classes(
                  predict(w.model, faces, w.spec))}
    qat_graph = w.folder.qat / artifact_name("student", "int8", "onnx")
    if qat_graph.is_file():
        models["QAT model (simulated)"] = lambda faces: classes(emulate(qat_graph, faces,
                                                                        w.spec))
    for path in artifacts:
        outputs = _artifact_outputs(w, path)
        if outputs is not None:
            models[path.name] = lambda faces, run=outputs: classes(run(faces))
    return labelled_report(labelled, w.run.classes, models, progress=progress)


def _artifact_outputs(w: Distilled, path: Path):
    """How an artifact is run on other faces: in its engine, or (a simulated file: RKNN)
    built again from its record; None, with a warning saying why, when it cannot be here."""
    if not is_simulated(path):
        return lambda faces: run_artifact(path, faces, check=False)[0]
    why = can_resimulate(w.folder.out, path)
    if why is not None:
        log.warning("%s is left out of the labelled evaluation: %s", path.name, why)
        return None
    crop = format_of(path).crop(w.spec)
    return lambda faces: resimulate(w.folder.out, path, make_inputs(faces, crop))


def stage_validate(out: Path, gate: Gate = DEFAULT_GATE, labelled: Path | None = None
                   ) -> tuple[dict, bool]:
    """report.json and manifest.json for every artifact in ``out``; True when all INT8 pass.
    With ``labelled`` real photos, every model is also scored on their labels."""
    out = Path(out)
    w = load_distilled(out)
    val_crops, float_logits, teacher_logits, labels = w.val()
    quant = quantize_results(out)
    artifacts = sorted(p for p in out.iterdir() if is_artifact(p))
    if not artifacts:
        raise MotivnetError(f"no artifacts in {out}: run 'motivnet-edge export' first")
    rows, entries, ok = {}, [file_entry(w.folder.student_weights, STUDENT_WEIGHTS_ROLE)], True
    sources: dict[str, np.ndarray] = {}  # float source -> its logits, each computed once
    for path in artifacts:
        meta = read_metadata(path)
        source = meta.get("recipe", {}).get("float_source", "student")
        if source not in sources:
            sources[source] = float_source_logits(w.folder, meta, val_crops, w.spec,
                                                  float_logits)
        row = evaluate_artifact(path, val_crops, sources[source], teacher_logits, labels,
                                check=False, layout=w.run.layout, gate=gate,
                                rows=load_simulated(w.folder, path, val_crops)
                                if is_simulated(path) else None)
        row["float_source"] = source
        row["float_source_is"] = FLOAT_SOURCES.get(source, source)
        rejected = f".{REJECTED}." in path.name
        row["status"] = "rejected" if rejected or (
            row["precision"].startswith("int8") and not gate.passes(row)) \
            else "ok"
        if row["precision"].startswith("int8"):
            row["trials"] = quant.get(row["format"], {}).get("trials", [])
        ok &= row["status"] == "ok"
        rows[path.name] = row
        role = artifact_role(row["format"], row["precision"], row["status"] == "ok")
        entries.append(file_entry(path, role, precision=row["precision"]))
    report = {"gate": gate.to_dict(), "passed": ok,
              "heldout_crops": len(val_crops), "data": w.run.data, "skipped": w.run.skipped,
              "calibration_data": w.run.calibration_data or w.run.data,
              "student": {"name": w.run.student.name, "input": w.run.student.size,
                          "weights": w.run.student.weights, "epochs": w.run.train.epochs,
                          **_against_teacher(w, float_logits, teacher_logits, labels)},
              "teacher": w.run.teacher.to_meta(), "artifacts": rows}
    if "qat" in sources:
        report["qat_model"] = {"is": FLOAT_SOURCES["qat"], **_against_teacher(
            w, sources["qat"], teacher_logits, labels, float_logits)}
    if labelled is not None:
        report["labelled"] = labelled_evaluation(w, artifacts, labelled)
    write_json(w.folder.report, report)
    entries.append(file_entry(w.folder.report, REPORT_ROLE))
    Manifest(entries, {"labels": w.run.classes, "student": w.run.student.name}).write(out)
    return report, ok


def _against_teacher(w: Distilled, rows: np.ndarray, teacher_rows: np.ndarray,
                     labels: np.ndarray | None, student_rows: np.ndarray | None = None) -> dict:
    """A float model's output ``rows`` on the held-out faces (the FP32 student's, or the QAT
    model's with its quantisation simulated) against the teacher, the labels and, given
    ``student_rows``, the FP32 student; its continuous outputs' MAE and CCC against the
    teacher's when it has them."""
    layout = w.run.layout
    top = layout.class_outputs(rows).argmax(1)
    out = {"agreement_with_teacher": float(np.mean(
        top == layout.class_outputs(teacher_rows).argmax(1)))}
    if student_rows is not None:
        out["agreement_with_fp32_student"] = float(np.mean(
            top == layout.class_outputs(student_rows).argmax(1)))
    if labels is not None:
        out["accuracy"] = float(np.mean(top == labels))
    if layout.continuous:
        out["values_against_teacher"] = agreement(layout.values(rows),
                                                  layout.values(teacher_rows))
    return out
