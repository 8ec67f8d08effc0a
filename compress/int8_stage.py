"""The quantize stage: INT8 artifacts in every format, each gated against its float source.

With quantization-aware fine-tuning on (``--qat-steps``, the default for real faces), the first
recipe of every format is the fine-tuned student's own INT8 graph (:mod:`.qat`); its float
source is that fine-tuned model, run in float with the quantisation simulated exactly as the
exported graph states it (``work/qat/student-int8.onnx`` in ONNX Runtime with graph
optimisations off, so nothing is fused into integer kernels). Post-training recipes follow, then
the weights-only last resort; each artifact from those is compared with the FP32 student.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from motivnet_edge.compress import qat
from motivnet_edge.compress.data import Mirrored
from motivnet_edge.compress.export import finish
from motivnet_edge.compress.quantize import RECIPES, Recipe, calibration_batch, quantize
from motivnet_edge.compress.stages import Work, load_work, work_dir
from motivnet_edge.compress.students import is_vit
from motivnet_edge.compress.validate import DEFAULT_GATE, Gate, evaluate_artifact
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path, write_json
from motivnet_edge.targets.formats import FORMATS, REJECTED, artifact_name, get_format
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import FaceImage, make_inputs

log = logging.getLogger(__name__)
QAT_RECIPE = Recipe("qat-pt2e")  # the fine-tuned student's own INT8 graph
FLOAT_SOURCES = {"student": "the FP32 student (student.pth)",
                 "qat": "the quantization-aware fine-tuned student, quantisation simulated "
                        f"(work/qat/{artifact_name('student', 'int8', 'onnx')}, no kernel fusion)"}


def qat_dir(out: Path) -> Path:
    return work_dir(out) / "qat"


def _calibration(w: Work, n: int) -> list[FaceImage]:
    """``n`` training crops; held-out crops are never used, so the gate stays honest."""
    idx = w.train_idx
    if len(idx) < n:
        log.warning("only %d training crops for calibration (asked for %d); lower "
                    "--val-fraction or give more data", len(idx), n)
    rng = np.random.default_rng(w.run.seed)
    pick = rng.choice(idx, size=min(n, len(idx)), replace=False)
    return [w.crops.crops[i] for i in pick]


def emulate(onnx_path: Path, crops: list[FaceImage], spec, batch: int = 64) -> np.ndarray:
    """Logits of a QDQ ONNX graph with every quantisation simulated in float: ONNX Runtime
    with graph optimisations off runs Quantize/DequantizeLinear as written, fusing nothing
    into integer kernels. The fine-tuned QAT model, exactly as exported."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: make_inputs(crops[i:i + batch], spec)})[0]
                           for i in range(0, len(crops), batch)])


def run_qat(out: Path, w: Work, cfg: qat.QatConfig, progress: bool = True) -> Path:
    """Fine-tune the student with quantisation simulated; write its INT8 graph as ONNX and
    TFLite under work/qat/ (no metadata yet). Returns the folder."""
    folder = qat_dir(out)
    teacher = np.load(work_dir(out) / "teacher.npy")
    mirrored_path = work_dir(out) / "teacher-mirrored.npy"
    train = [w.distil_crops.crops[i] for i in w.distil_train_idx]
    targets = teacher[w.distil_train_idx]
    crops = train
    if mirrored_path.is_file():
        crops = Mirrored(train, originals=True)
        targets = np.concatenate([targets, np.load(mirrored_path)[w.distil_train_idx]])
    prepared, quantizer = qat.finetune(w.model, w.spec, crops, targets, cfg, progress)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / artifact_name("student", "int8", "onnx")) as tmp:
        qat.export_onnx_qdq(qat.convert(prepared, fold_weights=True), w.spec, tmp)
    with atomic_path(folder / artifact_name("student", "int8", "tflite")) as tmp:
        qat.export_tflite(qat.convert(prepared), quantizer, w.spec, tmp)
    write_json(folder / "qat.json", {"config": vars(cfg), "student_sha256":
                                     w.base_meta(out)["student"]["sha256"]})
    return folder


def _qat_artifact(fmt: str, folder: Path, tmp: Path) -> None:
    source = folder / artifact_name("student", "int8", "onnx")
    if fmt == "onnx":
        shutil.copyfile(source, tmp)
    elif fmt == "tflite":
        shutil.copyfile(folder / artifact_name("student", "int8", "tflite"), tmp)
    else:  # OpenVINO reads the QDQ graph: FakeQuantize pairs, run as int8
        import openvino as ov

        ov.save_model(ov.convert_model(str(source)), str(tmp), compress_to_fp16=False)


def stage_quantize(out: Path, calibration: int = 300, gate: Gate = DEFAULT_GATE,
                   formats: tuple[str, ...] = tuple(FORMATS),
                   qat_cfg: qat.QatConfig | None = None, progress: bool = True
                   ) -> dict[str, dict]:
    """INT8 for each format; recipes tried in order until one passes the ``gate``.
    An artifact that never passes is kept under its rejected name for inspection."""
    out = Path(out)
    w = load_work(out)
    calib = _calibration(w, calibration)
    val_crops, float_logits, teacher_logits, labels = w.val()
    base = w.base_meta(out)
    recipes = {fmt: list(RECIPES[fmt]) for fmt in formats}
    sources = {"student": float_logits}
    if qat_cfg is not None and qat_cfg.steps > 0 and not is_vit(w.run.student.name):
        folder = run_qat(out, w, qat_cfg, progress)
        sources["qat"] = emulate(folder / artifact_name("student", "int8", "onnx"), val_crops,
                                 w.spec)
        for fmt in formats:
            recipes[fmt].insert(0, QAT_RECIPE)
    results: dict[str, dict] = {}
    for fmt in formats:
        fp32 = out / artifact_name("student", "fp32", fmt)
        if not fp32.is_file():
            raise MotivnetError(f"{fp32} is missing: run 'motivnet-edge export --out {out}'")
        batch = calibration_batch(calib, w.spec, fmt)
        trials: list[dict] = []
        final = out / artifact_name("student", "int8", fmt)
        trial = out / f".trial-{final.name}"
        best = out / f".best-{final.name}"  # the best trial so far, kept if none passes
        for recipe in recipes[fmt]:
            if recipe.source and not _usable_source(
                    out / artifact_name("student", "int8", recipe.source), base):
                continue  # built from another format's artifact, which is not full INT8 here
            source = "qat" if recipe is QAT_RECIPE else "student"
            with atomic_path(trial) as tmp:
                if source == "qat":
                    _qat_artifact(fmt, qat_dir(out), tmp)
                else:
                    quantize(fmt, fp32, w.model, batch, recipe, tmp, is_vit(w.run.student.name))
                finish(tmp, trial, fmt, base, w.spec,
                       {**recipe.to_dict(), "calibration_crops": len(calib),
                        "float_source": source})
            scores = evaluate_artifact(trial, val_crops, sources[source], teacher_logits,
                                       labels, check=False)
            scores["float_source"] = source
            trials.append({"recipe": recipe.name, **{k: scores[k] for k in
                                                        ("float_source", "agreement_with_float",
                                                         "flips", "flip_max_fp32_margin",
                                                         "cosine_with_float")}})
            log.info("%s int8 %s: agreement with its float source (%s) %.4f, %d flips "
                     "(largest float margin %.3f)", fmt, recipe.name, source,
                     scores["agreement_with_float"], scores["flips"],
                     scores["flip_max_fp32_margin"])
            if gate.rank(scores) >= max(gate.rank(t) for t in trials):
                _move(trial, best, fmt)
            if gate.passes(scores):
                break
        passed = any(gate.passes(t) for t in trials)
        rejected = out / artifact_name("student", "int8", fmt, REJECTED)
        keep, other = (final, rejected) if passed else (rejected, final)
        _move(best, keep, fmt)
        _remove(trial, fmt)
        _remove(other, fmt)  # a previous run's verdict on this format
        results[fmt] = {"file": keep.name, "passed": passed, "trials": trials}
    write_json(work_dir(out) / "quantize.json", results)
    return results


def float_source_logits(out: Path, w: Work, meta: dict, crops: list[FaceImage],
                        student_logits: np.ndarray) -> np.ndarray:
    """The logits an artifact's gate compares with, on ``crops``."""
    if meta.get("recipe", {}).get("float_source") == "qat":
        return emulate(qat_dir(out) / artifact_name("student", "int8", "onnx"), crops, w.spec)
    return student_logits


def _usable_source(path: Path, base: dict) -> bool:
    """True when ``path`` exists, was made from this folder's current student and is full
    INT8 (a weights-only source would make a weights-only copy; that recipe comes last)."""
    if not path.is_file():
        return False
    meta = read_metadata(path)
    return meta.get("student", {}).get("sha256") == base["student"]["sha256"] \
        and meta.get("precision") == "int8"


def _move(src: Path, dst: Path, fmt: str) -> None:
    # companions (an IR's .bin) first, the file engines open last
    files = get_format(fmt).files
    for s, d in reversed(list(zip(files(src), files(dst), strict=True))):
        os.replace(s, d)


def _remove(path: Path, fmt: str) -> None:
    for p in get_format(fmt).files(path):
        p.unlink(missing_ok=True)


def quantize_results(out: Path) -> dict:
    path = work_dir(out) / "quantize.json"
    return json.loads(path.read_text()) if path.is_file() else {}
