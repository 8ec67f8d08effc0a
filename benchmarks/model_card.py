"""Ship a compress run as the package's emotion model: copy the files a device runs, write their
manifest and the model card (``MODEL.md``) from the run's own report and benchmark.

    python -m motivnet_edge.benchmarks.model_card --artifacts out/real \\
        --bench out/real/bench/results.json --commit SHA --command "motivnet-edge compress ..."

Every figure in the card is read from ``report.json`` (written by ``validate
--labelled-eval``) and the benchmark's ``results.json``, so a rerun of either reproduces it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from motivnet_edge.benchmarks.host import describe
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.edge.shipped import MODEL_DIR
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.formats import artifact_name
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.manifest import MANIFEST, Manifest

SHIPPED = [artifact_name("student", "int8", "onnx"), artifact_name("student", "int8", "tflite")]
CLASSES = AFFECTNET7  # the shipped model's classes, in its order


def ship_files(src: Path, dest: Path) -> list[dict]:
    """The shipped artifacts copied into ``dest`` and their manifest written; their entries."""
    shipped = Manifest.read(src).only(SHIPPED)
    entries = shipped.files
    if sorted(e["path"] for e in entries) != sorted(SHIPPED):
        raise MotivnetError(f"{src / MANIFEST} does not list all of {SHIPPED}")
    for name in sorted(shipped.rejected()):
        raise MotivnetError(f"{name} failed the gate in {src}: not shipped")
    dest.mkdir(parents=True, exist_ok=True)
    for e in entries:
        with atomic_path(dest / e["path"]) as tmp:
            shutil.copyfile(src / e["path"], tmp)
    shipped.write(dest)
    return entries


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def accuracy_table(models: dict[str, dict], teacher_acc: float) -> str:
    head = ("| model | top-1 % | of the teacher's | macro recall % | agreement with teacher % | "
            + " | ".join(CLASSES) + " |")
    lines = [head, "|" + "---|" * (5 + len(CLASSES))]
    for name, m in models.items():
        recall = " | ".join(_pct(m["recall"].get(c)) for c in CLASSES)
        lines.append(f"| {name} | {_pct(m['accuracy'])} | "
                     f"{100 * m['accuracy'] / teacher_acc:.1f} % | {_pct(m['macro_recall'])} | "
                     f"{_pct(m.get('agreement_with_teacher'))} | {recall} |")
    return "\n".join(lines)


def speed_table(bench: dict) -> str:
    lines = ["| row | top-1 % | p50 ms per face | p95 ms | faces/s at batch 8 | x teacher |",
             "|---|---|---|---|---|---|"]
    for r in bench["rows"]:
        if r.get("status") != "ok" or r.get("p50_ms") is None:
            continue
        if r["kind"] == "artifact" and r["name"] not in SHIPPED:
            continue
        lines.append(f"| {r['row']} | {_pct(r.get('top1'))} | {r['p50_ms']:.3g} | "
                     f"{r['p95_ms']:.3g} | {r.get('throughput_b8') or ''} | "
                     f"{r.get('speedup_teacher') or ''} |")
    return "\n".join(lines)


def bench_command(bench: dict) -> str:
    cmd = bench.get("command") or {}
    if isinstance(cmd, str):
        return cmd
    return ("motivnet-edge bench --artifacts out/real --labelled faces-dev/labels.csv "
            "--out out/real/bench")


def selection_section(selection: dict | None) -> str:
    """How the shipped student was chosen: the rule and each shipped file's figures on the
    held-out halves (:mod:`motivnet_edge.benchmarks.agreement`'s output)."""
    if selection is None:
        return "Not recorded for this model."
    rows = ["| file | select: agreement % | KL | rare classes % | untouched: agreement % | KL "
            "| rare classes % |", "|---|---|---|---|---|---|---|"]
    # agreement's JSON: faces and groups; written before it measured labelled photos too,
    # held_out and select
    n_held_out = selection.get("faces", selection.get("held_out"))
    n_select = selection.get("groups", selection).get("select")
    for path, f in selection["rows"].items():
        rows.append(_selection_row(f"`{Path(path).name}`", f))
    # the teacher against itself on views that keep the expression (agreement's teacher rows)
    teacher = [_selection_row(f"*{name}*", f)
               for name, f in selection.get("teacher_rows", {}).items() if "select_kl" in f]
    steadiness = ("\n\nThe teacher against its own answers, by the same rule (rows in italics): "
                  "on each face's mirror image and on the face boxed a little differently. "
                  "How often it changes its answer there is how much of it rests on details no "
                  "expression is made of; read the files' figures beside it." if teacher else "")
    return (f"Every decision about this student (its recipe, length, weights) read one figure: "
            f"its top-1 agreement with the teacher on the select half of the held-out "
            f"unlabelled faces ({n_select:,} of {n_held_out:,}), ties "
            f"broken by the lower KL divergence from the teacher; the other half (untouched) "
            f"was read by no decision, and faces-dev only reports (docs/patient.md). Rare "
            f"classes: the faces the teacher puts in a class it names on fewer than half the "
            f"uniform share (sadness, surprise, fear, disgust, anger).{steadiness}\n\n"
            + "\n".join(rows + teacher))


def _selection_row(name: str, f: dict) -> str:
    cells = [f"{100 * f[f'{h}_agreement']:.1f} | {f[f'{h}_kl']:.3f} | "
             f"{100 * f[f'{h}_rare_agreement']:.1f}" for h in ("select", "untouched")]
    return f"| {name} | " + " | ".join(cells) + " |"


def card(report: dict, bench: dict | None, entries: list[dict], command: str,
         commit: str, took: str = "", selection: dict | None = None) -> str:
    """MODEL.md for the shipped files, from a compress run's report, its bench results, the
    files' manifest entries and their selection figures."""
    lab = report["labelled"]
    models = lab["models"]
    shown = {"teacher (fer-mobilefacenet, aligned crop)": models["teacher"],
             "FP32 student (student.pth)": models["student.pth"],
             **{f"{n} (shipped)": models[n] for n in SHIPPED}}
    counts = dict(zip(lab["classes"], (sum(r) for r in models["teacher"]["confusion"]),
                      strict=False))
    return TEMPLATE.format(
        student=report["student"]["name"], start=_start(report["student"]),
        size=report["student"]["input"], classes=", ".join(CLASSES), commit=commit,
        command=command, took=took,
        teacher_file=report["teacher"].get("identity", {}).get("file", "fer-mobilefacenet"),
        heldout=report["heldout_crops"], images=lab["images"], faces=lab["faces"],
        files="\n".join(f"| `{e['path']}` | {e['bytes']:,} | `{e['sha256']}` |"
                        for e in entries),
        gate_lines=_gate_lines(report),
        per_class=", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES),
        outside=", ".join(f"{n} {c}" for c, n in lab["classes_without_model"].items())
        or "none",
        accuracy=accuracy_table(shown, models["teacher"]["accuracy"]), speed=_speed(bench),
        fear=counts.get("Fear", 0), selection=selection_section(selection))


def _start(student: dict) -> str:
    """Where the student's weights began, in the card's words."""
    weights = student.get("weights") or "scratch"
    return {"imagenet": "ImageNet start", "scratch": "trained from scratch"}.get(
        weights, f"started from {weights}")


def _gate_lines(report: dict) -> str:
    return "\n".join(
        f"- `{n}`: {g['what_it_is']}; agrees with its float source on "
        f"{100 * g['agreement_with_float']:.2f} % of {g['n']:,} held-out crops, with the teacher "
        f"on {100 * g['agreement_with_teacher']:.1f} %"
        for n, g in ((n, report["artifacts"][n]) for n in SHIPPED))


def _speed(bench: dict | None) -> str:
    if bench is None:
        return "Not measured."
    return (f"Measured with `motivnet-edge bench` ({bench.get('faces')} faces, one thread, "
            f"batch 1 after warm-up, rows interleaved; `{bench_command(bench)}`) on: "
            f"**{describe(bench['host'])}**, {bench['host'].get('os', '')}. Engines: "
            + ", ".join(f"{k} {v}" for k, v in bench["host"].get("versions", {}).items())
            + ".\n\n" + speed_table(bench))


# the card; every {name} is filled by card()
TEMPLATE = """# motivnet-edge emotion model (shipped default)

An {student} student ({start}, {size}x{size} px, faces
aligned on five YuNet landmarks) distilled from OpenCV Zoo's fer-mobilefacenet on real face
photos, quantised to full INT8 (weights and activations) with quantisation-aware fine-tuning.
Seven classes in MotivNet's published order: {classes}. It is the model the daemon,
`motivnet-edge classify` and `motivnet-edge bench` use when no other is given; a target profile
picks one of its files (`student-int8.tflite` for LiteRT on a Raspberry Pi,
`student-int8.onnx` for ONNX Runtime, OpenVINO and TensorRT).

## How it was made

commit {commit} of motivnet-edge, with these commands (docs/compress.md, docs/patient.md):

```bash
{command}
```
{took}

- Teacher: {teacher_file} (OpenCV Zoo,
  Apache-2.0), its own preprocessing given by the shipped spec `fer-mobilefacenet`.
- Data: the 8,849 unlabelled face photos of the project's `faces-unlabelled` set (Apache-2.0 and
  public-domain photos; {heldout:,} of the faces found were held out for the
  INT8 gate and never trained on). The photos are not shipped; the weights may be (both
  licences allow it).
- Evaluation: `faces-dev`, {images} labelled real photos no training step saw
  ({faces} with a face found; its labels are noisy). Earlier students' recipes (epochs,
  augmentation) were chosen on its figures; this one's were not (below).

## How it was chosen

{selection}

## Files

| file | bytes | sha256 |
|---|---|---|
{files}

{gate_lines}

## Accuracy on faces-dev (real photos)

Reproduce: `motivnet-edge validate --out out/real --labelled-eval faces-dev/labels.csv` on the
run folder (section `labelled` of `report.json`). Per-class columns are recall %, over these
faces per class: {per_class}; photos labelled with a class outside the model's seven ({outside})
count as errors.

{accuracy}

## Speed

{speed}

## Intended use and known limits

- Intended: a camera or a box that reports which of seven expressions the faces in front of
  it show, with the probabilities, to its operator; research and prototyping.
- Known limits: frontal and near-frontal faces that YuNet finds (profile faces, heavy occlusion
  and faces under about 40 px are not classified well or not found); few fearful and disgusted
  faces in the training photos and in faces-dev (Fear: {fear} faces there), so
  their recall is low or rests on a handful of faces; seven classes
  only: no Contempt and no valence/arousal; it mimics its teacher, errors included (top-1 about
  54 % on noisy real labels); not validated across ages, skin tones or cultures.
- Not for: decisions about people (hiring, policing, health, education), or inferring anyone's
  inner state: an expression is not a feeling.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.model_card``: the shipped files copied, their manifest
    and MODEL.md written."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=Path, required=True, help="the compress run folder")
    p.add_argument("--bench", type=Path, help="its benchmark's results.json")
    p.add_argument("--commit", required=True, help="the commit that made the run")
    p.add_argument("--command", required=True, help="the command that made the run")
    p.add_argument("--took", default="", help="how long the command took, and where")
    p.add_argument("--selection", type=Path, help="the shipped files' selection figures "
                   "(python -m motivnet_edge.benchmarks.agreement --json)")
    p.add_argument("--dest", type=Path, default=MODEL_DIR)
    args = p.parse_args(argv)
    try:
        path = RunFolder(args.artifacts).report
        report = json.loads(path.read_text())
        if "labelled" not in report:
            raise MotivnetError(f"{path} has no labelled section: run validate "
                                f"--labelled-eval first")
        bench = json.loads(args.bench.read_text()) if args.bench else None
        selection = json.loads(args.selection.read_text()) if args.selection else None
        entries = ship_files(args.artifacts, args.dest)
        text = card(report, bench, entries, args.command, args.commit, args.took, selection)
        with atomic_path(args.dest / "MODEL.md") as tmp:
            tmp.write_text(text)
    except (MotivnetError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"shipped {', '.join(SHIPPED)} and MODEL.md into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
