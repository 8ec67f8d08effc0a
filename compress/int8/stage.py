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
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.data import Mirrored
from motivnet_edge.compress.distil.distilled import Distilled, load_distilled
from motivnet_edge.compress.fidelity import DEFAULT_GATE, Gate, evaluate_artifact
from motivnet_edge.compress.inference import QAT_GRAPHS, emulate, quantize_results
from motivnet_edge.compress.int8 import qat
from motivnet_edge.compress.int8.export import finish
from motivnet_edge.compress.int8.formats import OPS, calibration, is_simulated, quantize
from motivnet_edge.compress.int8.recipes import QAT_RECIPE, Calibration, Recipe
from motivnet_edge.compress.int8.simulated import prune_simulated, save_simulated
from motivnet_edge.compress.models.students import is_vit
from motivnet_edge.compress.settings import CALIBRATION_CROPS, QatConfig
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path, write_json
from motivnet_edge.targets.formats import (
    DEFAULT_FORMATS,
    REJECTED,
    artifact_name,
    get_format,
    is_artifact,
)
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import FaceImage, make_inputs

log = logging.getLogger(__name__)
TRIAL_KEYS = ("float_source", "agreement_with_float", "flips", "flip_max_float_margin",
              "decided", "kl_from_float", "int8_margin_noise", "flips_by_margin",
              "cosine_with_float", "values")


def _calibration(d: Distilled, n: int) -> list[FaceImage]:
    """``n`` training crops; held-out crops are never used, so the gate stays honest."""
    idx = d.train_idx
    if len(idx) < n:
        log.warning("only %d training crops for calibration (asked for %d); lower "
                    "--val-fraction or give more data", len(idx), n)
    rng = np.random.default_rng(d.run.seed)
    pick = rng.choice(idx, size=min(n, len(idx)), replace=False)
    return [d.crops.crops[i] for i in pick]


def _qat_done(folder: Path, cfg: QatConfig, student_sha256: str) -> bool:
    """True when work/qat/ holds this student's fine-tuning with this config, every graph
    there: quantising another format later (``--formats rknn``) keeps the float source the
    others were gated against."""
    record = folder / "qat.json"
    if not record.is_file():
        return False
    done = json.loads(record.read_text())
    return (done.get("student_sha256") == student_sha256
            and done.get("config") == json.loads(json.dumps(vars(cfg)))
            and all((folder / artifact_name("student", "int8", fmt)).is_file()
                    for fmt, ops in OPS.items() if ops.export_qat is not None))


def run_qat(d: Distilled, cfg: QatConfig, progress: bool = True) -> Path:
    """Fine-tune the student with quantisation simulated; write its INT8 graph in every format
    that exports one (ONNX, TFLite) under work/qat/ (no metadata yet). Returns the folder.
    A fine-tuning already there for this student and config is kept (delete work/qat/ to
    run it again)."""
    folder = d.folder.qat
    student = d.base_meta()["student"]["sha256"]
    if _qat_done(folder, cfg, student):
        log.info("quantization-aware fine-tuning: kept from %s (same student and settings)",
                 folder / "qat.json")
        return folder
    teacher = np.load(d.folder.faces(calibrated=False)[1])
    train = [d.distil_crops.crops[i] for i in d.distil_train_idx]
    targets = teacher[d.distil_train_idx]
    crops = train
    if d.folder.teacher_mirrored.is_file():
        crops = Mirrored(train, originals=True)
        targets = np.concatenate([targets,
                                  np.load(d.folder.teacher_mirrored)[d.distil_train_idx]])
    prepared, quantizer = qat.finetune(d.model, d.spec, crops, targets, cfg, progress,
                                       len(d.run.layout.continuous))
    folder.mkdir(parents=True, exist_ok=True)
    for fmt, ops in OPS.items():
        if ops.export_qat is not None:
            with atomic_path(folder / artifact_name("student", "int8", fmt)) as tmp:
                ops.export_qat(prepared, quantizer, d.spec, tmp)
    write_json(folder / "qat.json", {"config": vars(cfg), "student_sha256": student})
    return folder


def stage_quantize(out: Path, calibration: int = CALIBRATION_CROPS, gate: Gate = DEFAULT_GATE,
                   formats: tuple[str, ...] = DEFAULT_FORMATS,
                   qat_cfg: QatConfig | None = None, progress: bool = True,
                   rknn_platform: str = "rk3588") -> dict[str, dict]:
    """INT8 for each format; recipes tried in order until one passes the ``gate``.
    An artifact that never passes is kept under its rejected name for inspection. RKNN files
    are built for ``rknn_platform``."""
    d = load_distilled(out)
    d.folder.drop_verdict()
    calib = _calibration(d, calibration)
    float_logits = d.val()[1]
    recipes = {fmt: list(OPS[fmt].recipes) for fmt in formats}
    sources = {"student": float_logits}
    if qat_cfg is not None and qat_cfg.steps > 0 and not is_vit(d.run.student.name):
        run_qat(d, qat_cfg, progress)
        for fmt in formats:
            recipes[fmt].insert(0, QAT_RECIPE)
    base = d.base_meta()  # hashes student.pth: once, not per format
    results = {fmt: _quantize_format(d, fmt, recipes[fmt], calib, sources, gate, base,
                                     rknn_platform) for fmt in formats}
    earlier = quantize_results(out)  # the formats not quantised this time keep their trials
    write_json(d.folder.quantize_results, {**earlier, **results})
    return results


def _calibration_for(d: Distilled, fmt: str, calib: list[FaceImage], platform: str
                     ) -> Calibration:
    """What ``fmt``'s recipes work from; a simulated format's (RKNN) also the held-out inputs,
    its FP32 source being the ONNX file."""
    out, ops = d.folder.out, OPS[fmt]
    fp32 = out / artifact_name("student", "fp32", "onnx" if ops.simulated else fmt)
    if not fp32.is_file():
        raise MotivnetError(f"{fp32} is missing: run 'motivnet-edge export --out {out}'")
    cal = calibration(fmt, fp32, d.model, calib, d.spec, is_vit(d.run.student.name),
                      1 + bool(d.run.layout.continuous))  # a values head beside the classes
    if ops.simulated:
        cal.held_out = make_inputs(d.val()[0], get_format(fmt).crop(d.spec))
        cal.platform = platform
        cal.keep = d.folder.work / "simulated" / ".trial-build"
    return cal


def _make_trial(d: Distilled, fmt: str, recipe: Recipe, cal: Calibration, tmp: Path):
    """One recipe's INT8 file at ``tmp``; a simulated format's rows on the held-out crops."""
    if recipe is not QAT_RECIPE:
        return quantize(fmt, cal, recipe, tmp)
    return OPS[fmt].from_qat(d.folder.qat, tmp, cal)  # writes the graph of its float source


def _quantize_format(d: Distilled, fmt: str, recipes: list[Recipe], calib: list[FaceImage],
                     sources: dict[str, np.ndarray], gate: Gate, base: dict,
                     platform: str = "rk3588") -> dict:
    """Recipes tried in order until one passes; the best trial kept (rejected if none did)."""
    out, form = d.folder.out, get_format(fmt)
    cal = _calibration_for(d, fmt, calib, platform)
    val_crops, _, teacher_logits, labels = d.val()
    final = out / artifact_name("student", "int8", fmt)
    trial, best = out / f".trial-{final.name}", out / f".best-{final.name}"
    trials: list[dict] = []
    for recipe in recipes:
        if recipe.source and not _usable_source(
                out / artifact_name("student", "int8", recipe.source), base):
            continue  # built from another format's artifact, which is not full INT8 here
        source = OPS[fmt].qat_source if recipe is QAT_RECIPE else "student"
        with atomic_path(trial) as tmp:
            rows = _make_trial(d, fmt, recipe, cal, tmp)
            finish(tmp, trial, fmt, base, d.spec, {**recipe.to_dict(), "calibration_crops":
                                                   len(calib), "float_source": source,
                                                   **({"platform": platform} if rows is not None
                                                      else {})})
        if rows is not None:
            save_simulated(d.folder, trial, rows, val_crops, cal.held_out, cal.keep)
        if source not in sources:  # the QAT graph as this format's engine computes it
            sources[source] = emulate(d.folder.qat / QAT_GRAPHS[source], val_crops, d.spec)
        scores = evaluate_artifact(trial, val_crops, sources[source], teacher_logits, labels,
                                   check=False, layout=d.run.layout, gate=gate, rows=rows)
        scores["float_source"] = source
        trials.append({"recipe": recipe.name, **{k: scores[k] for k in TRIAL_KEYS
                                                 if k in scores}})
        log.info("%s int8 %s: agreement with its float source (%s) %.4f, on the %d faces it "
                 "decided (margin >= %.3f) %.4f, KL %.4f, %d flips (largest float margin "
                 "%.3f)%s", fmt, recipe.name, source, scores["agreement_with_float"],
                 scores["decided"]["n"], scores["decided"]["margin"],
                 scores["decided"]["agreement"], scores["kl_from_float"],
                 scores["flips"], scores["flip_max_float_margin"], "".join(
                     f", {k} MAE {v['mae']:.4f} CCC {v['ccc']:.4f}"
                     for k, v in scores.get("values", {}).items()))
        if gate.rank(scores) >= max(gate.rank(t) for t in trials):
            form.move(trial, best)
        if gate.passes(scores):
            break
    passed = any(gate.passes(t) for t in trials)
    rejected = out / artifact_name("student", "int8", fmt, REJECTED)
    keep, other = (final, rejected) if passed else (rejected, final)
    form.move(best, keep)
    form.remove(trial)
    form.remove(other)  # a previous run's verdict on this format
    if OPS[fmt].simulated:  # the losing trials' rows and build records
        prune_simulated(out, [p for p in out.iterdir() if is_artifact(p) and is_simulated(p)])
    return {"file": keep.name, "passed": passed, "trials": trials}


def _usable_source(path: Path, base: dict) -> bool:
    """True when ``path`` exists, was made from this folder's current student and is full
    INT8 (a weights-only source would make a weights-only copy; that recipe comes last)."""
    if not path.is_file():
        return False
    meta = read_metadata(path)
    return meta.get("student", {}).get("sha256") == base["student"]["sha256"] \
        and meta.get("precision") == "int8"
