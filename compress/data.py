"""Face crops for distillation, calibration and validation, made by the device's own code.

Images, video files (every N-th frame), labelled sets (class folders or CSV) or, with nothing
given, the built-in synthetic faces: each goes through :class:`edge.detect.FaceDetector` and
:func:`edge.preprocess.crop_square`. Unreadable images and images without a face are skipped and
counted, never fatal; an empty result is an error.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.detect import Face, FaceDetector
from motivnet_edge.edge.labelled import IMAGE_SUFFIXES, load_labelled
from motivnet_edge.edge.synthetic import synth_faces
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import crop_square

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
MAX_CROP = 256  # crops are stored at their own size up to this side


@dataclass
class CropSet:
    """Square BGR face crops with labels (-1: unlabelled), content hashes and sources."""

    crops: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and min(self.labels) >= 0

    def subset(self, index: Sequence[int]) -> CropSet:
        return CropSet([self.crops[i] for i in index], [self.labels[i] for i in index],
                       [self.hashes[i] for i in index], [self.sources[i] for i in index])

    def save(self, path: Path) -> None:
        from motivnet_edge.targets.files import atomic_path

        sides = np.array([c.shape[0] for c in self.crops])
        with atomic_path(Path(path), suffix=".npz") as tmp:
            np.savez(tmp, flat=np.concatenate([c.reshape(-1) for c in self.crops]), sides=sides,
                     labels=np.array(self.labels), hashes=np.array(self.hashes),
                     sources=np.array(self.sources))

    @classmethod
    def load(cls, path: Path) -> CropSet:
        if not Path(path).is_file():
            raise MotivnetError(f"crop set {path} does not exist; run 'motivnet-edge distil' "
                                f"first")
        with np.load(path) as z:
            flat, sides = z["flat"], z["sides"]
            ends = np.cumsum(sides * sides * 3)
            crops = [flat[e - s * s * 3:e].reshape(s, s, 3) for e, s in zip(ends, sides,
                                                                            strict=True)]
            return cls(crops, z["labels"].tolist(), z["hashes"].tolist(), z["sources"].tolist())


def crop_hash(crop: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(crop).tobytes()
                          + str(crop.shape).encode()).hexdigest()


def gate_files(work: Path, calibrated: bool) -> tuple[Path, Path]:
    """The crops and teacher logits in a compress work folder that INT8 is calibrated and
    gated on: the --calibration-data's when it was given, else the distillation data's."""
    return ((work / "calib.npz", work / "calib_teacher.npy") if calibrated
            else (work / "crops.npz", work / "teacher.npy"))


def split_index(hashes: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic train/validation split by content hash."""
    val = [i for i, h in enumerate(hashes) if int(h[:8], 16) / 0xFFFFFFFF < val_fraction]
    vset = set(val)
    return [i for i in range(len(hashes)) if i not in vset], val


def _frames(path: Path, every: int, skipped: Counter) -> Iterator[tuple[str, np.ndarray]]:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            skipped["unreadable"] += 1
            log.warning("cannot open video %s", path)
            return
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n % every == 0:
                yield f"{path}#{n}", frame
            n += 1
        cap.release()
        return
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        skipped["unreadable"] += 1
        log.warning("cannot read image %s", path)
        return
    yield str(path), frame


def _find_face(detector: FaceDetector, frame: np.ndarray) -> tuple[Face | None, np.ndarray]:
    """The largest face and the frame it was found in. A photo that is already a tight face
    crop leaves a detector no context (Haar finds 79 % of faces-dev's photos, 92 % once
    padded): when nothing is found, search again with a quarter of the side added around it."""
    faces = detector.detect(frame)
    if faces:
        return faces[0], frame
    pad = max(frame.shape[:2]) // 4
    framed = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = detector.detect(framed)
    return (faces[0], framed) if faces else (None, frame)


def _add(out: CropSet, detector: FaceDetector, frame: np.ndarray, source: str, label: int,
         margin: float) -> None:
    face, frame = _find_face(detector, frame)
    if face is None:
        out.skipped["no face"] += 1
        return
    crop = crop_square(frame, face.box, margin)
    if crop.shape[0] > MAX_CROP:
        crop = cv2.resize(crop, (MAX_CROP, MAX_CROP), interpolation=cv2.INTER_AREA)
    out.crops.append(np.ascontiguousarray(crop))
    out.labels.append(label)
    out.hashes.append(crop_hash(crop))
    out.sources.append(source)


def _media(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not path.exists():
        raise MotivnetError(f"data {path} does not exist")
    return [path]


def collect(data: Sequence[Path] = (), labelled: Path | None = None,
            detector: FaceDetector | None = None, margin: float = 0.15, every: int = 10,
            synthetic: int = 2000, seed: int = 0, classes: Sequence[str] = AFFECTNET7,
            progress: bool = True) -> CropSet:
    """Face crops from ``data`` (image files, folders, videos), a ``labelled`` set, or, when
    both are empty, ``synthetic`` generated faces (labelled)."""
    from tqdm import tqdm

    detector = detector or FaceDetector()
    out = CropSet()
    jobs: list[tuple[Path | None, np.ndarray | None, int]] = []
    if labelled is not None:
        lset = load_labelled(labelled, classes)
        out.skipped.update({f"label {k}": v for k, v in lset.skipped.items()})
        jobs += [(p, None, k) for p, k in zip(lset.paths, lset.labels, strict=True)]
    for d in data:
        jobs += [(p, None, -1) for p in _media(Path(d))]
    if not jobs and labelled is None and not data:
        jobs = [(None, f.image, f.label) for f in synth_faces(synthetic, seed=seed)]
    for path, image, label in tqdm(jobs, desc="finding faces", unit="img", disable=not progress,
                                   leave=False):
        if image is not None:
            _add(out, detector, image, f"synthetic:{len(out.sources)}", label, margin)
            continue
        if not Path(path).is_file():
            out.skipped["missing"] += 1
            continue
        for source, frame in _frames(Path(path), every, out.skipped):
            _add(out, detector, frame, source, label, margin)
    if not out.crops:
        where = ", ".join(str(d) for d in [*data, labelled] if d) or "synthetic faces"
        raise MotivnetError(f"no face crops found in {where} ({dict(out.skipped) or 'no images'})")
    log.info("%d face crops; skipped: %s", len(out), dict(out.skipped) or "none")
    return out
