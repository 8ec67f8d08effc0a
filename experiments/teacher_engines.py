"""Which teacher? A distil run's exported teacher file run in every engine here that opens it
(OpenVINO and ONNX Runtime for an ONNX file, and OpenCV's DNN module, the runtime the OpenCV
Zoo publishes its models for), on the run's held-out faces (with ``--labelled``, on a labelled
set's faces, labels not read). An INT8 teacher's answer rests on its engine's integer kernels
and rounding: `distil --teacher-engine` picks the one a student learns from, while `bench` runs
an ONNX teacher in ONNX Runtime. For each engine as the reference, the selection figures of
the teacher in every other engine, of its own mirror image and of each artifact: how far the
engines' teachers are apart, and which of them a student copies.

    python -m motivnet_edge.experiments.teacher_engines --run OUT [A.onnx B.tflite ...]
        [--labelled faces-dev/labels.csv] [--json F] [--plot matrix.png]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.agreement import (
    artifact_logits,
    ensemble,
    figures,
    held_out,
    in_batches,
    labelled,
    paired,
    table,
)
from motivnet_edge.compress.models.teachers import Teacher
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file

OPENCV = "opencv"
# the reference made of every engine's class probabilities averaged (what is left of the
# teacher where the engines' rounding cancels)
AVERAGED = "every engine, probabilities averaged"


def engine_teachers(record) -> dict:
    """The run's teacher (its ``TeacherRecord``) loaded again in each engine here that opens
    its file, by engine name; OpenCV's DNN module too for an ONNX file it runs."""
    from motivnet_edge.compress.models.teachers import reload_teacher
    from motivnet_edge.targets.engine import engines_for, runtime_installed
    from motivnet_edge.targets.formats import SUFFIXES

    path = Path(record.path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise MotivnetError(f"the run's teacher {path.name} is a {record.identity.get('kind')} "
                            f"model, run in torch alone: engines are compared on exported files")
    teachers = {engine: reload_teacher(record, engine=engine)
                for engine in engines_for(fmt.name) if runtime_installed(engine)}
    if fmt.name == "onnx":
        try:
            teacher = OpenCvTeacher(path, next(iter(teachers.values())).spec)
            teacher._logits(np.zeros(teacher.crop.input_shape, np.float32))  # runs at all?
            teachers[OPENCV] = teacher
        except Exception as exc:  # noqa: BLE001 - cv2.error for a graph its DNN cannot run
            print(f"OpenCV's DNN module cannot run {path.name}, left out: {exc}",
                  file=sys.stderr)
    return teachers


class OpenCvTeacher(Teacher):
    """An ONNX teacher in OpenCV's DNN module (CPU, its default backend), one face at a time,
    with the project's preprocessing and class order."""

    def __init__(self, path: Path, spec) -> None:
        import cv2

        super().__init__({"kind": "onnx", "file": path.name, "sha256": sha256_file(path),
                          "engine": OPENCV}, spec)
        self.net = cv2.dnn.readNet(str(path))

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        rows = []
        for one in batch:  # one at a time: its INT8 layers take no batch for some graphs
            self.net.setInput(np.ascontiguousarray(one[None], np.float32))
            rows.append(self.net.forward())
        return np.concatenate(rows)


def engine_rows(teachers: dict, data: dict) -> tuple[dict, dict, dict]:
    """Each engine's teacher rows on the faces of ``data`` and on their mirror images, and its
    milliseconds per face (both passes; batches of 64 where the engine takes them)."""
    faces, n = data["faces"], len(data["classes"])
    mirrored = [f.mirrored() for f in faces]
    plain, flipped, ms = {}, {}, {}
    for engine, teacher in teachers.items():
        start = time.perf_counter()
        plain[engine] = in_batches(teacher.predict, faces)[:, :n]
        flipped[engine] = in_batches(teacher.predict, mirrored)[:, :n]
        ms[engine] = 1000 * (time.perf_counter() - start) / (2 * len(faces))
    return plain, flipped, ms


def compare(data: dict, teachers: dict, artifacts: list[Path]) -> dict:
    """For each engine as the reference (and, with two or more, every engine's probabilities
    averaged): the figures of the teacher in the others, of each artifact and of the
    reference's own mirror image; and every row face by face against the first other
    reference."""
    plain, flipped, ms = engine_rows(teachers, data)
    if len(plain) > 1:
        plain[AVERAGED], flipped[AVERAGED] = ensemble(list(plain.values())), \
            ensemble(list(flipped.values()))
    students = artifact_logits(data, artifacts)
    out = {"ms_per_face": ms, "references": {}}
    for ref in plain:
        ref_data = {**data, "teacher": plain[ref], "mirrored": flipped[ref]}
        rows = {f"teacher in {e}": x for e, x in plain.items() if e != ref} | students
        out["references"][ref] = {
            "rows": {name: figures(x, ref_data) for name, x in rows.items()},
            "teacher_rows": {f"teacher in {ref}, mirror image": figures(flipped[ref], ref_data)},
            "paired": paired({name: x.argmax(1) for name, x in rows.items()}, ref_data)}
    return out


def report(result: dict) -> str:
    """The tables, one per reference."""
    lines = [f"{result['faces']} faces: " + ", ".join(f"{n} {g}" for g, n in
                                                     result["groups"].items()),
             "milliseconds per face: " + ", ".join(
                 f"{e} {v:.2f}" for e, v in result["ms_per_face"].items())]
    for ref, figs in result["references"].items():
        lines += ["", f"Against the teacher in {ref}:", "",
                  table({"groups": result["groups"], **figs})]
    return "\n".join(lines)


def overall(row: dict, groups: dict) -> float:
    """A row's top-1 agreement over all its groups' faces."""
    return sum(row[f"{g}_agreement"] * n for g, n in groups.items()) / sum(groups.values())


def plot_matrix(result: dict, path: Path, title: str) -> None:
    """Every row's top-1 agreement (all faces) against every reference, as an annotated
    heat map: the teachers' rows first, then the artifacts."""
    from motivnet_edge.benchmarks.figures import pyplot, save

    refs = list(result["references"])
    names = [f"teacher in {r}" for r in refs] + [
        n for n in result["references"][refs[0]]["rows"] if not n.startswith("teacher in ")]
    cells = np.array([[1.0 if name == f"teacher in {ref}" else
                       overall(result["references"][ref]["rows"][name], result["groups"])
                       for ref in refs] for name in names])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(refs), 1.2 + 0.5 * len(names)))
    ax.imshow(cells, cmap="viridis", vmin=min(0.8, cells.min()), vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(cells):
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                color="black" if value > 0.93 else "white")
    short = [n if n.startswith("teacher in ") else f"{Path(n).parent.name}/{Path(n).name}"
             for n in names]
    ax.set_yticks(range(len(names)), short, fontsize=8)
    ax.set_xticks(range(len(refs)), [textwrap.fill(f"against the teacher in {r}", 20)
                                     for r in refs], fontsize=8)
    ax.set_title("\n".join(textwrap.wrap(title, 64)), fontsize=9)
    fig.tight_layout()
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.teacher_engines``: the run's teacher in each engine
    and the artifacts against each, printed as tables (and written as JSON with --json)."""
    from motivnet_edge.benchmarks.host import cpu_info
    from motivnet_edge.compress.runfolder import RunFolder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("artifacts", type=Path, nargs="*")
    p.add_argument("--labelled", type=Path, help="on these labelled photos' faces instead")
    p.add_argument("--json", type=Path, help="write the figures here too")
    p.add_argument("--plot", type=Path, help="draw the agreement matrix here (.png)")
    p.add_argument("--title", default="Top-1 agreement with one INT8 teacher file run in "
                                      "each engine")
    args = p.parse_args(argv)
    if args.plot and args.plot.suffix != ".png":
        print(f"error: --plot {args.plot}: a .png file", file=sys.stderr)
        return 2
    try:
        teachers = engine_teachers(RunFolder(args.run).read_record().teacher)
        data = labelled(args.run, args.labelled) if args.labelled else held_out(args.run)
        result = {"cpu": cpu_info(), "run": str(args.run), "faces": len(data["faces"]),
                  "groups": {g: int(m.sum()) for g, m in data["groups"].items()},
                  **compare(data, teachers, args.artifacts)}
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    if args.plot:
        plot_matrix(result, args.plot, args.title)
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
