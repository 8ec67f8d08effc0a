"""The output rows a simulator gave for an artifact no engine here opens (RKNN: rknn-toolkit2's
simulator runs only a model it has just built), kept by the file's content digest so that the
gate, at quantize and at validate, reads what the simulator computed for exactly that file on
exactly those faces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.data import crop_hash
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.metadata import DIGEST_KEY, read_metadata
from motivnet_edge.targets.preprocess import FaceImage


def _simulated_path(folder: RunFolder, path: Path) -> Path:
    digest = read_metadata(path).get(DIGEST_KEY, "")
    return folder.work / "simulated" / f"{digest[:32]}.npz"  # the file's, whatever its name


def save_simulated(folder: RunFolder, path: Path, rows: np.ndarray,
                   crops: Sequence[FaceImage]) -> None:
    """The output rows a simulator gave for an artifact (RKNN) on ``crops``, kept by the
    file's content digest: the simulator runs only a model it has just built, so the gate reads
    these instead of opening the file in an engine."""
    target = _simulated_path(folder, path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, rows=rows, hashes=np.array([crop_hash(c) for c in crops]))


def load_simulated(folder: RunFolder, path: Path, crops: Sequence[FaceImage]) -> np.ndarray:
    """The rows :func:`save_simulated` kept for this file on these crops; an error naming the
    file when there are none (it was made elsewhere, changed, or simulated on other faces)."""
    kept = _simulated_path(folder, path)
    if not kept.is_file():
        raise MotivnetError(f"{Path(path).name}: no simulator run of this file is kept in "
                            f"{kept.parent} (it runs only at build time): run quantize again")
    with np.load(kept) as data:
        if list(data["hashes"]) != [crop_hash(c) for c in crops]:
            raise MotivnetError(f"{Path(path).name} was simulated on other held-out faces "
                                f"than these: run quantize again")
        return data["rows"]
