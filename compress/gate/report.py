"""The report table printed after validation: one row per artifact, then the student, the
teacher and the labelled evaluation, and the gate's verdict."""

from __future__ import annotations

import sys

from motivnet_edge.compress.settings import flip_margin

# below this agreement with the teacher on held-out crops, the gate only says that INT8 copies
# a student that is itself of little use
WEAK_STUDENT = 0.8


def table(heads: tuple[str, ...], rows: list[list[str]], file=sys.stdout) -> None:
    widths = [max(len(x) for x in col) for col in zip(heads, *rows, strict=False)]
    for line in [heads, *rows]:
        print("  ".join(c.ljust(wd) for c, wd in zip(line, widths, strict=True)).rstrip(),
              file=file)


def _cell(r: dict, c: str) -> str:
    v = r.get(c, "")
    if c == "bytes":
        return f"{v / 1e6:.2f} MB"
    if c == "flips" and v:
        return f"{v} ({flip_margin(r):.3f})"
    if c == "decided" and v:
        return f"{v['agreement']:.4f} ({v['n']} >= {v['margin']:.2f})"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def print_report(report: dict, file=sys.stdout) -> None:
    cols = ("format", "precision", "bytes", "float_source", "agreement_with_float", "decided",
            "kl_from_float", "flips", "agreement_with_teacher", "accuracy", "status")
    heads = ("file", "format", "prec", "size", "float source", "agr/float",
             "agr/decided (faces >= margin)", "KL", "flips (max float margin)", "agr/teacher",
             "accuracy", "status")
    table(heads, [[name, *(_cell(r, c) for c in cols)]
                  for name, r in report["artifacts"].items()], file)
    s = report["student"]
    print(f"\nstudent {s['name']} @{s['input']}: agreement with teacher "
          f"{s['agreement_with_teacher']:.4f} on {report['heldout_crops']} held-out crops"
          + (f", accuracy {s['accuracy']:.4f}" if "accuracy" in s else ""), file=file)
    if s["agreement_with_teacher"] < WEAK_STUDENT:
        print(f"warning: the student keeps little of the teacher (agreement below "
              f"{WEAK_STUDENT}): {weak_student_hint(s)}", file=file)
    q = report.get("qat_model")
    if q:
        print(f"QAT model (float source of the qat-pt2e artifacts): agreement with teacher "
              f"{q['agreement_with_teacher']:.4f}, with the FP32 student "
              f"{q['agreement_with_fp32_student']:.4f}"
              + (f", accuracy {q['accuracy']:.4f}" if "accuracy" in q else ""), file=file)
    print_values(report, file)
    weights_only = [n for n, r in report["artifacts"].items() if r["precision"] == "int8-weights"]
    if weights_only:
        print(f"WARNING: weights-only INT8 (float arithmetic; full INT8 flipped too many "
              f"decisions), the last-resort recipe: {', '.join(weights_only)}", file=file)
    if report.get("labelled"):
        print_labelled(report["labelled"], file)
    print(gate_line(report), file=file)


def weak_student_hint(student: dict) -> str:
    """What to try for a student that learnt little, given how it was made (reports written
    before the report named the student's start say nothing of it)."""
    if "weights" in student and not student["weights"]:
        return ("start from ImageNet weights (--student-weights imagenet), distil on more "
                "faces, or teach longer (--preset patient)")
    return ("distil on more faces, teach longer (--preset patient; this student had "
            f"{student.get('epochs', '?')} epochs), or try another student (--student)")


def gate_line(report: dict) -> str:
    """``gate PASSED (onnx, tflite)`` or ``gate FAILED (passed: onnx; failed: openvino)``: the
    verdict and the formats of the INT8 files on each side of it."""
    int8 = [r for r in report["artifacts"].values() if r["precision"] != "fp32"]
    passed = sorted({r["format"] for r in int8 if r["status"] == "ok"})
    failed = sorted({r["format"] for r in int8 if r["status"] != "ok"})
    if report["passed"]:
        return f"gate PASSED ({', '.join(passed) or 'no INT8 file'})"
    return (f"gate FAILED (passed: {', '.join(passed) or 'none'}; failed: "
            f"{', '.join(failed) or 'none'})")


def print_values(report: dict, file=sys.stdout) -> None:
    """Valence and arousal, where the artifacts have them: each artifact's MAE and CCC against
    its float source, and the float models' against the teacher."""
    rows = [[name, name_v, f"{v['mae']:.4f}", f"{v['ccc']:.4f}", "its float source"]
            for name, r in report["artifacts"].items()
            for name_v, v in r.get("values", {}).items()]
    floats = {"FP32 student": report["student"], "QAT model": report.get("qat_model") or {}}
    rows += [[name, name_v, f"{v['mae']:.4f}", f"{v['ccc']:.4f}", "the teacher"]
             for name, m in floats.items()
             for name_v, v in m.get("values_against_teacher", {}).items()]
    if rows:
        print("\ncontinuous outputs:", file=file)
        table(("model", "output", "MAE", "CCC", "against"), rows, file)


def print_labelled(lab: dict, file=sys.stdout) -> None:
    """Accuracy, macro recall and per-class recall of every model on the same labelled faces."""
    classes = lab["classes"]
    print(f"\nlabelled faces: {lab['faces']} of {lab['images']} images ({lab['source']}); "
          f"skipped: {lab['skipped'] or 'none'}", file=file)
    heads = ("model", "accuracy", "macro recall", "agr/teacher",
             *(c[:5] for c in classes))
    rows = []
    for name, m in lab["models"].items():
        rows.append([name, f"{m['accuracy']:.4f}", f"{m['macro_recall']:.4f}",
                     f"{m['agreement_with_teacher']:.4f}" if "agreement_with_teacher" in m
                     else "", *(f"{m['recall'].get(c, float('nan')):.2f}" for c in classes)])
    table(heads, rows, file)
    extra = lab.get("classes_without_model")
    if extra:
        print("labels the models cannot give (counted as errors): "
              + ", ".join(f"{k} {v}" for k, v in extra.items()), file=file)
