"""The output rows a simulator gave for an artifact no engine here opens (RKNN: rknn-toolkit2's
simulator runs only a model it has just built), kept by the file's content digest with what
built it, so that the gate, at quantize and at validate, reads what the simulator computed for
exactly that file on exactly those faces, and other faces can be run by building it again.

``work/simulated/<digest>/``: ``rows.npz`` (the held-out rows and the crops' hashes),
``check.npy`` (the first held-out inputs) and ``build/`` (the build's record,
:func:`motivnet_edge.compress.int8.rknn_ops.rebuild`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.data import crop_hash
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.metadata import DIGEST_KEY, read_metadata
from motivnet_edge.targets.preprocess import FaceImage

CHECK_INPUTS = 16  # held-out inputs a rebuilt model must reproduce exactly
RECORD = "build"


def simulated_folder(run: Path, path: Path) -> Path:
    """Where a simulated file's rows and build record are kept in the run folder ``run``."""
    digest = read_metadata(path).get(DIGEST_KEY, "")
    return RunFolder(run).work / "simulated" / digest[:32]  # the file's, whatever its name


def save_simulated(folder: RunFolder, path: Path, rows: np.ndarray,
                   crops: Sequence[FaceImage], inputs: np.ndarray,
                   record: Path | None = None) -> None:
    """The output rows a simulator gave for an artifact (RKNN) on ``crops`` (whose inputs
    are ``inputs``), kept by the file's content digest with its build ``record`` (moved in)."""
    target = simulated_folder(folder.out, path)
    target.mkdir(parents=True, exist_ok=True)
    with atomic_path(target / "rows.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, rows=rows, hashes=np.array([crop_hash(c) for c in crops]))
    with atomic_path(target / "check.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, inputs[:CHECK_INPUTS].astype(np.float32))
    if record is not None:
        shutil.rmtree(target / RECORD, ignore_errors=True)
        Path(record).replace(target / RECORD)


def load_simulated(folder: RunFolder, path: Path, crops: Sequence[FaceImage]) -> np.ndarray:
    """The rows :func:`save_simulated` kept for this file on these crops; an error naming the
    file when there are none (it was made elsewhere, changed, or simulated on other faces)."""
    kept = simulated_folder(folder.out, path) / "rows.npz"
    if not kept.is_file():
        raise MotivnetError(f"{Path(path).name}: no simulator run of this file is kept in "
                            f"{kept.parent.parent} (it runs only at build time): run quantize "
                            f"again")
    with np.load(kept) as data:
        if list(data["hashes"]) != [crop_hash(c) for c in crops]:
            raise MotivnetError(f"{Path(path).name} was simulated on other held-out faces "
                                f"than these: run quantize again")
        return data["rows"]


def can_resimulate(run: Path, path: Path) -> str | None:
    """Why ``path`` cannot be run on new inputs here (None when it can): its build record in
    the run folder ``run`` and the toolkit that built it are needed."""
    from motivnet_edge.compress.int8 import rknn_ops

    try:
        record = simulated_folder(run, path) / RECORD
    except MotivnetError as exc:
        return str(exc)
    if not (record / "build.json").is_file():
        return (f"{Path(path).name}: no record of how it was built in {record.parent.parent} "
                f"(a simulator runs only a model it builds): quantize it in this run folder")
    return rknn_ops.missing_reason()


def resimulate(run: Path, path: Path, inputs: np.ndarray) -> np.ndarray:
    """The simulator's rows for ``inputs`` from ``path`` built again from its record; the
    rebuilt model must give exactly the rows kept for the first held-out inputs, else an
    error (the toolkit, its source or its calibration changed)."""
    from motivnet_edge.compress.int8 import rknn_ops

    why = can_resimulate(run, path)
    if why is not None:
        raise MotivnetError(why)
    kept = simulated_folder(run, path)
    check = np.load(kept / "check.npy")
    with np.load(kept / "rows.npz") as data:
        expected = data["rows"][:len(check)]
    rows = rknn_ops.rebuild(kept / RECORD, np.concatenate([check, inputs.astype(np.float32)]))
    if not np.array_equal(rows[:len(check)], expected):
        worst = float(np.abs(rows[:len(check)] - expected).max())
        raise MotivnetError(f"{Path(path).name}: built again from its record, the simulator "
                            f"does not reproduce the rows the gate read (largest difference "
                            f"{worst:.4g}): run quantize again")
    return rows[len(check):]


def prune_simulated(run: Path, keep: Iterable[Path]) -> None:
    """Remove the kept rows and records of files that are no longer in the run folder (trials
    that lost)."""
    folder = RunFolder(run).work / "simulated"
    if not folder.is_dir():
        return
    wanted = {simulated_folder(run, p).name for p in keep if Path(p).is_file()}
    for entry in folder.iterdir():
        if entry.name not in wanted:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
