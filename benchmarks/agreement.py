"""The selection figures of any artifact on a distil run's held-out faces: agreement with the
teacher (top-1, KL, the teacher's rare classes) on the select half, which decisions read, and on
the untouched half, which none does (:mod:`motivnet_edge.compress.distil.selection`). Artifacts
from other runs can be measured on one run's faces when both held the same faces out (the split
is by content hash): how a new student is compared with the shipped one.

    python -m motivnet_edge.benchmarks.agreement --run OUT A.onnx B.tflite [--json F]
        [--jitter 0.25] [--mirror-average] [--ensemble] [--by-margin [--plot P.png]]
        [--labelled faces-dev/labels.csv]

With ``--labelled`` the same figures are taken on the faces of labelled photos (their labels
not read; one group, ``labelled``) against the run's teacher run on them.

Beside the artifacts, the teacher is measured against itself on views that keep the
expression: the mirror image of each face (the run's cached rows) and the face boxed a little
differently (``--jitter S``: turned up to 8xS degrees, scaled up to 6xS %, shifted up to 4xS %,
as a detector's box moves between frames). How often the teacher changes its own answer there
says how much of its decision rests on details no expression is made of: a student that
matches it more closely than that is learning the teacher's noise. ``--mirror-average`` adds a
row per artifact run on the face and its mirror image, logits averaged (twice the time).
Every row's ``steady_agreement`` is its agreement on the faces whose teacher answer survives
the mirror image (where the teacher is sure enough to be matched).

Where the misses come from: ``--ensemble`` adds a row of every artifact's class probabilities
averaged (independently trained students: what is left when their differences cancel is what
they all miss, not what one seed happened to learn), and ``--by-margin`` gives each row's
agreement in bands of the teacher's own margin (its first class probability less its second),
beside its mirror image's, so the faces where the teacher all but ties are read apart from
those it is sure of.
"""

from __future__ import annotations

import argparse
import math
import sys
from functools import cache
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.targets.errors import MotivnetError

COLUMNS = ("agreement", "kl", "rare_agreement", "steady_agreement")
# the bands of the teacher's margin (first class probability less its second) --by-margin reads
MARGINS = (0.0, 0.1, 0.2, 0.4, 1.0)


def held_out(run_out: Path, train: bool = False) -> dict:
    """A run's held-out faces (``faces``), the teacher's class logits for them and for their
    mirror images (``teacher``, ``mirrored``; None for a run that kept none), the two halves
    (``groups``: select, untouched), the run's class order and how to load its teacher
    (``teacher_model``, loaded when first asked for). With ``train`` the faces it trained on
    follow as a third group, ``train``: how closely it copies the teacher where it learnt."""
    from motivnet_edge.compress.distil.data import CropSet, split_index
    from motivnet_edge.compress.distil.selection import HALVES, held_out_halves
    from motivnet_edge.compress.models.teachers import reload_teacher
    from motivnet_edge.compress.runfolder import RunFolder

    folder = RunFolder(run_out)
    run = folder.read_record()
    crops_path, teacher_path = folder.faces(calibrated=False)
    crops = CropSet.load(crops_path)
    tr, val = split_index(crops.hashes, run.val_fraction)
    rows = np.asarray(val + (tr if train else []), int)
    n = len(run.classes)
    mirrored = np.load(folder.teacher_mirrored)[rows][:, :n] \
        if folder.teacher_mirrored.is_file() else None
    kept = np.arange(len(rows)) < len(val)  # the held-out faces come first
    select = np.pad(held_out_halves([crops.hashes[i] for i in val]), (0, len(rows) - len(val)))
    groups = dict(zip(HALVES, (select, kept & ~select), strict=True))
    if train:
        groups["train"] = ~kept
    return {"faces": [crops.crops[i] for i in rows], "teacher": np.load(teacher_path)[rows][:, :n],
            "mirrored": mirrored, "groups": groups, "classes": run.classes,
            "teacher_model": cache(lambda: reload_teacher(run.teacher))}


def labelled(run_out: Path, csv: Path) -> dict:
    """The faces of labelled photos (the labels are not read) with the run's teacher's class
    logits for them and their mirror images, as one group named ``labelled``."""
    from motivnet_edge.compress.distil.data import collect
    from motivnet_edge.compress.models.teachers import reload_teacher
    from motivnet_edge.compress.runfolder import RunFolder
    from motivnet_edge.targets.labels import AFFECTNET8

    run = RunFolder(run_out).read_record()
    faces = collect(labelled=csv, classes=AFFECTNET8, progress=True).crops  # every label
    teacher = reload_teacher(run.teacher)
    n = len(run.classes)
    return {"faces": faces, "teacher": in_batches(teacher.predict, faces)[:, :n],
            "mirrored": in_batches(teacher.predict, [f.mirrored() for f in faces])[:, :n],
            "groups": {"labelled": np.ones(len(faces), bool)}, "classes": run.classes,
            "teacher_model": lambda: teacher}


def in_batches(predict, items, batch: int = 64) -> np.ndarray:
    """``predict`` (faces or cut images -> rows) run on ``items`` a batch at a time, the rows
    joined."""
    return np.concatenate([predict(items[i:i + batch]) for i in range(0, len(items), batch)])


def figures(logits: np.ndarray, data: dict) -> dict:
    """The selection figures of one row of logits on each group of faces (top-1 agreement, KL,
    rare classes; ``{group}_agreement`` and so on) and, when the teacher's mirror rows are
    known, its agreement on the faces where the teacher's answer survives the mirror image,
    ``{group}_steady_agreement`` of ``{group}_steady_n`` faces, and on the rare-class faces
    that do (``rare_steady``) and do not (``rare_unsteady``)."""
    from motivnet_edge.compress.distil.selection import agreement_figures, rare_classes

    teacher, mirrored = data["teacher"], data["mirrored"]
    want = teacher.argmax(1)
    agree = logits.argmax(1) == want
    steady = want == mirrored.argmax(1) if mirrored is not None else None
    out = {}
    for group, mask in data["groups"].items():
        if not mask.any():
            continue
        for key, value in agreement_figures(logits[mask], teacher[mask]).items():
            out[f"{group}_{key}"] = value
        if steady is None:
            continue
        rare = mask & np.isin(want, rare_classes(teacher[mask]))
        for name, faces in (("steady", mask & steady), ("rare_steady", rare & steady),
                            ("rare_unsteady", rare & ~steady)):
            if faces.any():
                out[f"{group}_{name}_agreement"] = float(agree[faces].mean())
                out[f"{group}_{name}_n"] = int(faces.sum())
    return out


def teacher_rows(data: dict, jitter: float, seed: int = 0) -> dict:
    """The teacher's figures against its own answers on the mirror images and (``jitter`` > 0)
    on the faces boxed differently, by the same rule as a student's."""
    from motivnet_edge.compress.distil.augment import moved_face
    from motivnet_edge.compress.distil.data import MIRRORED_TEACHER

    rows = {}
    if data["mirrored"] is not None:
        rows[MIRRORED_TEACHER] = figures(data["mirrored"], data)
    if jitter > 0:
        teacher = data["teacher_model"]()
        rng = np.random.default_rng(seed)
        moved = [moved_face(face, rng, jitter) for face in data["faces"]]
        rows[f"teacher, box moved (jitter {jitter:g})"] = figures(
            in_batches(teacher.predict, moved)[:, :len(data["classes"])], data)
    return rows


def artifact_logits(data: dict, artifacts: list[Path], mirror_average: bool = False) -> dict:
    """Each artifact's class logits on the faces of ``data`` in the run's class order, by row
    name (and, with ``mirror_average``, on the face and its mirror image averaged)."""
    from motivnet_edge.benchmarks.measure import engine_runner
    from motivnet_edge.targets.engine import EngineOptions

    faces, classes = data["faces"], data["classes"]
    rows = {}
    for path in artifacts:
        runner = engine_runner(path, None, EngineOptions(threads=1)).open()
        try:
            rows[str(path)] = logits = runner.logits(faces, classes)
            if mirror_average:
                both = (logits + runner.logits([f.mirrored() for f in faces], classes)) / 2
                rows[f"{path} (with its mirror image)"] = both
        finally:
            runner.close()
    return rows


def ensemble(logits: list[np.ndarray]) -> np.ndarray:
    """The rows' class probabilities averaged, as log-probabilities (a row of logits)."""
    from motivnet_edge.targets.engine import softmax

    return np.log(np.mean([softmax(x.astype(np.float64)) for x in logits], 0) + 1e-12)


def by_margin(rows: dict, data: dict) -> dict:
    """Per row (and the teacher's mirror image, where known), per group, per band of the
    teacher's margin (``MARGINS``): ``[top-1 agreement, faces]``."""
    from motivnet_edge.targets.engine import softmax

    top = np.sort(softmax(data["teacher"].astype(np.float64)), 1)
    margin, want = top[:, -1] - top[:, -2], data["teacher"].argmax(1)
    bands = {f"{lo:g}-{hi:g}": (margin >= lo) & ((margin < hi) | (hi == MARGINS[-1]))
             for lo, hi in zip(MARGINS[:-1], MARGINS[1:], strict=True)}
    mirrored = {} if data["mirrored"] is None else {"teacher, mirror image": data["mirrored"]}
    out = {}
    for name, logits in {**rows, **mirrored}.items():
        ok = logits.argmax(1) == want
        out[name] = {group: {band: [float(ok[mask & faces].mean()), int((mask & faces).sum())]
                             for band, faces in bands.items() if (mask & faces).any()}
                     for group, mask in data["groups"].items()}
    return out


def measure(data: dict, artifacts: list[Path], jitter: float = 0.0,
            mirror_average: bool = False, with_ensemble: bool = False,
            margins: bool = False) -> dict:
    """Every artifact's figures and the teacher's own on the faces of ``data``
    (:func:`held_out` or :func:`labelled`); with ``with_ensemble`` a row of the artifacts'
    probabilities averaged, with ``margins`` the figures by the teacher's margin too."""
    rows = artifact_logits(data, artifacts, mirror_average)
    if with_ensemble and len(artifacts) > 1:
        rows[f"ensemble of the {len(artifacts)} files (probabilities averaged)"] = ensemble(
            [rows[str(p)] for p in artifacts])
    result = {"faces": len(data["faces"]),
              "groups": {g: int(m.sum()) for g, m in data["groups"].items()},
              "rows": {name: figures(x, data) for name, x in rows.items()},
              "teacher_rows": teacher_rows(data, jitter),
              "paired": paired({name: x.argmax(1) for name, x in rows.items()}, data)}
    if margins:
        result["margins"] = by_margin(rows, data)
    return result


def paired(picks: dict, data: dict) -> dict:
    """Every row against the first, face by face on each group: the faces only the row agrees
    with the teacher on (``{group}_only_row``), those only the first does (``_only_first``)
    and the exact two-sided sign test's p on those discordant faces (``_p``). Two students
    measured on the same faces differ by these faces alone, so a difference of a few faces
    reads as what it is."""
    if not picks:
        return {}
    want = data["teacher"].argmax(1)
    first, *others = picks
    first_ok = picks[first] == want
    out = {}
    for name in others:
        row_ok = picks[name] == want
        out[name] = {}
        for group, mask in data["groups"].items():
            b, c = int((mask & row_ok & ~first_ok).sum()), int((mask & first_ok & ~row_ok).sum())
            out[name].update({f"{group}_only_row": b, f"{group}_only_first": c,
                              f"{group}_p": sign_test(b, c)})
    return out


def sign_test(b: int, c: int) -> float:
    """The exact two-sided sign test's p for ``b`` against ``c`` discordant cases."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def table(result: dict) -> str:
    groups = list(result["groups"])
    head = "| row | " + " | ".join(f"{g} {c}" for g in groups for c in COLUMNS) + " |"
    lines = [head, "|---" * (1 + len(groups) * len(COLUMNS)) + "|"]
    for name, row in {**result["rows"], **result["teacher_rows"]}.items():
        cells = [f"{row.get(f'{g}_{c}', float('nan')):.4f}" for g in groups for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result.get("paired"):
        first = next(iter(result["rows"]))
        lines += ["", f"Face by face against {first} (faces only the row agrees on / only "
                  "the first does, exact sign test p):", "",
                  "| row | " + " | ".join(groups) + " |", "|---" * (1 + len(groups)) + "|"]
        for name, pair in result["paired"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{pair[f'{g}_only_row']} / {pair[f'{g}_only_first']}, p {pair[f'{g}_p']:.3f}"
                for g in groups) + " |")
    return "\n".join(lines)


def margin_table(margins: dict) -> str:
    """Each row's agreement by band of the teacher's margin, one column per group and band."""
    cols = [(g, band) for g, bands in next(iter(margins.values())).items() for band in bands]
    lines = ["By the teacher's margin (top-1 agreement, faces):", "",
             "| row | " + " | ".join(f"{g} {band}" for g, band in cols) + " |",
             "|---" * (1 + len(cols)) + "|"]
    for name, groups in margins.items():
        cells = [groups[g].get(band, [float("nan"), 0]) for g, band in cols]
        lines.append(f"| {name} | " + " | ".join(f"{a:.3f} ({n})" for a, n in cells) + " |")
    return "\n".join(lines)


def short_names(names: list[str]) -> dict[str, str]:
    """Each path by its shortest ending that no other of ``names`` shares (``run/a.onnx`` and
    ``other/a.onnx``, not ``a.onnx`` twice): the labels of a plot's rows."""
    parts = [Path(n).parts or (n,) for n in names]
    for k in range(1, max(map(len, parts)) + 1):
        short = ["/".join(p[-k:]) for p in parts]
        if len(set(short)) == len(short):
            return dict(zip(names, short, strict=True))
    return {n: n for n in names}


def plot_margins(margins: dict, path: Path, title: str) -> None:
    """The margin table as grouped bars: one panel per group, one bar per row in each band of
    the teacher's margin, the band's faces under it."""
    plt = pyplot()
    labels = short_names(list(margins))
    groups = next(iter(margins.values()))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    width = 0.8 / len(margins)
    for ax, (group, bands) in zip(axes[0], groups.items(), strict=True):
        for i, (name, rows) in enumerate(margins.items()):
            ax.bar([b + i * width for b in range(len(bands))],
                   [rows[group].get(band, [np.nan])[0] for band in bands], width,
                   label=labels[name])
        ax.set_xticks([b + 0.4 - width / 2 for b in range(len(bands))],
                      [f"{band}\n({n} faces)" for band, (_, n) in bands.items()], fontsize=8)
        ax.set_xlabel(f"the teacher's margin (first probability less second), {group}")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("top-1 agreement with the teacher")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", fontsize=8,
               ncol=3, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(margins) + 2) // 3), 1, 1))
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.agreement``: the selection figures of the artifacts
    and the teacher's own steadiness, printed as a table (and written as JSON with --json)."""
    from motivnet_edge.benchmarks.host import cpu_info

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("artifacts", type=Path, nargs="*")
    p.add_argument("--json", type=Path, help="write the figures here too")
    p.add_argument("--labelled", type=Path,
                   help="measure on the faces of these labelled photos (a CSV of image,emotion "
                        "or a folder per class; the labels are not read) instead of the run's "
                        "held-out faces, against the run's teacher")
    p.add_argument("--jitter", type=float, default=0.25,
                   help="the teacher on each face boxed differently by this strength (0: not "
                        "measured; the run's teacher file is read)")
    p.add_argument("--train", action="store_true",
                   help="also on the faces the run trained on (group 'train')")
    p.add_argument("--mirror-average", action="store_true",
                   help="also each artifact on the face and its mirror image, logits averaged")
    p.add_argument("--ensemble", action="store_true",
                   help="also a row of all the artifacts' class probabilities averaged")
    p.add_argument("--by-margin", action="store_true",
                   help="also each row's agreement in bands of the teacher's margin")
    p.add_argument("--plot", type=Path, help="with --by-margin: draw those bands here (.png)")
    p.add_argument("--title", default="Agreement with the teacher by its own margin")
    args = p.parse_args(argv)
    if not 0 <= args.jitter <= 3:
        print(f"error: --jitter {args.jitter:g} is outside 0..3", file=sys.stderr)
        return 2
    if args.plot and (not args.by_margin or args.plot.suffix != ".png"):
        print(f"error: --plot {args.plot}: a .png file, drawn with --by-margin",
              file=sys.stderr)
        return 2
    try:
        data = labelled(args.run, args.labelled) if args.labelled \
            else held_out(args.run, args.train)
        result = {"cpu": cpu_info(), "run": str(args.run),
                  **measure(data, args.artifacts, args.jitter, args.mirror_average,
                            args.ensemble, args.by_margin)}
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['faces']} faces ({args.labelled or f'held out by {args.run}'}): "
          + ", ".join(f"{n} {g}" for g, n in result["groups"].items()))
    print(table(result))
    if result.get("margins"):
        print("\n" + margin_table(result["margins"]))
        if args.plot:
            plot_margins(result["margins"], args.plot, args.title)
    if args.json:
        from motivnet_edge.targets.files import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
