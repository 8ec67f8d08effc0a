"""Faces for distillation, calibration and validation, found by the device's own detector.

Images, video files (every N-th frame), labelled sets (class folders or CSV) or, with nothing
given, the built-in synthetic faces: each goes through
:class:`motivnet_edge.edge.detect.FaceDetector`, and the largest face is kept as a
:class:`~motivnet_edge.targets.preprocess.FaceImage`: a square region around it with room to
spare, and its box and landmarks in that region. Every model input is then made from it by the
one crop function, for any crop spec (square, box or aligned) and with geometric augmentation
done by moving the box and landmarks. Unreadable images and images without a face are skipped
and counted, never fatal; an empty result is an error.
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

from motivnet_edge.compress.progress import track
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.labelled import IMAGE_SUFFIXES, load_labelled
from motivnet_edge.edge.synthetic import synth_faces
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import Face, FaceImage, crop_square, square_region

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
# the region kept around a face: its longer side plus this much of it on every side, enough for
# any crop spec's margin and for moving the box in augmentation
REGION_MARGIN = 0.45
MAX_REGION = 256  # regions are kept at their own size up to this side
MIRROR = ":mirror"  # a crop's hash plus this is its mirror image's


@dataclass
class CropSet:
    """Faces (:class:`FaceImage`) with labels (-1: unlabelled), content hashes and sources."""

    crops: list[FaceImage] = field(default_factory=list)
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
        shapes = np.array([c.image.shape[:2] for c in self.crops])
        boxes = np.array([c.face.box for c in self.crops], np.float32)
        marks = np.stack([c.face.landmarks if c.face.landmarks is not None
                          else np.full((5, 2), np.nan, np.float32) for c in self.crops])
        with atomic_path(Path(path), suffix=".npz") as tmp:
            np.savez(tmp, flat=np.concatenate([c.image.reshape(-1) for c in self.crops]),
                     shapes=shapes, boxes=boxes, landmarks=marks.astype(np.float32),
                     labels=np.array(self.labels), hashes=np.array(self.hashes),
                     sources=np.array(self.sources))

    @classmethod
    def load(cls, path: Path) -> CropSet:
        if not Path(path).is_file():
            raise MotivnetError(f"crop set {path} does not exist; run 'motivnet-edge distil' "
                                f"first")
        with np.load(path) as z:
            if "shapes" not in z:
                raise MotivnetError(f"crop set {path} was written by an older motivnet-edge: "
                                    f"run 'motivnet-edge distil' again")
            flat, shapes = z["flat"], z["shapes"]
            ends = np.cumsum(shapes[:, 0] * shapes[:, 1] * 3)
            crops = []
            for end, (h, w), box, marks in zip(ends, shapes, z["boxes"], z["landmarks"],
                                               strict=True):
                image = flat[end - h * w * 3:end].reshape(h, w, 3)
                face = Face(tuple(float(v) for v in box), 1.0,
                            None if np.isnan(marks).any() else marks)
                crops.append(FaceImage(image, face))
            return cls(crops, z["labels"].tolist(), z["hashes"].tolist(),
                       z["sources"].tolist())


class Mirrored(Sequence):
    """The mirror images of a list of faces, made when asked for; with ``originals`` the faces
    themselves first, then their mirror images (2N items)."""

    def __init__(self, crops: Sequence[FaceImage], originals: bool = False) -> None:
        self.crops, self.originals = crops, originals

    def __len__(self) -> int:
        return len(self.crops) * (2 if self.originals else 1)

    def __getitem__(self, i):
        n = len(self.crops)
        if self.originals and i < n:
            return self.crops[i]
        return self.crops[i - n if self.originals else i].mirrored()


def crop_hash(crop: FaceImage) -> str:
    """Of the pixels, their shape, and the face's box and landmarks: what an input is made of."""
    h = hashlib.sha256(np.ascontiguousarray(crop.image).tobytes())
    h.update(str(crop.image.shape).encode())
    if crop.face is not None:
        h.update(np.asarray(crop.face.box, np.float32).tobytes())
        if crop.face.landmarks is not None:
            h.update(np.asarray(crop.face.landmarks, np.float32).tobytes())
    return h.hexdigest()


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


def face_region(frame: np.ndarray, face: Face) -> FaceImage:
    """The square region around ``face`` that is kept (at most :data:`MAX_REGION` a side), with
    the face's box and landmarks moved into it."""
    x0, y0, side = square_region(face.box, REGION_MARGIN)
    region = crop_square(frame, face.box, REGION_MARGIN)
    k = min(1.0, MAX_REGION / side)
    if k < 1.0:
        size = max(1, int(round(side * k)))
        region = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
        k = size / side
    return FaceImage(np.ascontiguousarray(region), face.scaled(k, -x0, -y0))


def _add(out: CropSet, detector: FaceDetector, frame: np.ndarray, source: str, label: int
         ) -> None:
    face, frame = _find_face(detector, frame)
    if face is None:
        out.skipped["no face"] += 1
        return
    crop = face_region(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR),
                       face)
    out.crops.append(crop)
    out.labels.append(label)
    out.hashes.append(crop_hash(crop))
    out.sources.append(source)


def media_files(path: Path) -> list[Path]:
    """The images and videos in a folder (recursively), or the file itself."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not path.exists():
        raise MotivnetError(f"data {path} does not exist")
    return [path]


def collect(data: Sequence[Path] = (), labelled: Path | None = None,
            detector: FaceDetector | None = None, every: int = 10, synthetic: int = 2000,
            seed: int = 0, classes: Sequence[str] = AFFECTNET7, progress: bool = True
            ) -> CropSet:
    """Face crops from ``data`` (image files, folders, videos), a ``labelled`` set, or, when
    both are empty, ``synthetic`` generated faces (labelled)."""
    detector = detector or FaceDetector()
    out = CropSet()
    jobs: list[tuple[Path | None, np.ndarray | None, int]] = []
    if labelled is not None:
        lset = load_labelled(labelled, classes)
        out.skipped.update({f"label {k}": v for k, v in lset.skipped.items()})
        jobs += [(p, None, k) for p, k in zip(lset.paths, lset.labels, strict=True)]
    for d in data:
        jobs += [(p, None, -1) for p in media_files(d)]
    if not jobs and labelled is None and not data:
        jobs = [(None, f.image, f.label) for f in synth_faces(synthetic, seed=seed)]
    for path, image, label in track(jobs, "finding faces", unit="image", enabled=progress):
        if image is not None:
            _add(out, detector, image, f"synthetic:{len(out.sources)}", label)
            continue
        if not Path(path).is_file():
            out.skipped["missing"] += 1
            continue
        for source, frame in _frames(Path(path), every, out.skipped):
            _add(out, detector, frame, source, label)
    if not out.crops:
        where = ", ".join(str(d) for d in [*data, labelled] if d) or "synthetic faces"
        raise MotivnetError(f"no face crops found in {where} ({dict(out.skipped) or 'no images'})")
    log.info("%d face crops; skipped: %s", len(out), dict(out.skipped) or "none")
    return out
