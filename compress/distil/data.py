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
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.compress.distil.world import SINGLE, World
from motivnet_edge.compress.progress import track
from motivnet_edge.edge.data.labelled import IMAGE_SUFFIXES, load_labelled
from motivnet_edge.edge.data.synthetic import synth_faces
from motivnet_edge.edge.detect import FaceDetector
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
# the name of the teacher's figures on the mirror images beside its own (its steadiness)
MIRRORED_TEACHER = "teacher, mirror image"


@dataclass
class CropSet:
    """Faces (:class:`FaceImage`) with labels (-1: unlabelled), content hashes and sources."""

    crops: list[FaceImage] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    jobs: list[int] = field(default_factory=list)  # the image or video each came from, in order

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and min(self.labels) >= 0

    def save(self, path: Path) -> None:
        shapes = np.array([c.image.shape[:2] for c in self.crops], np.int64).reshape(-1, 2)
        boxes = np.array([c.face.box for c in self.crops], np.float32).reshape(-1, 4)
        marks = np.array([c.face.landmarks if c.face.landmarks is not None
                          else np.full((5, 2), np.nan, np.float32) for c in self.crops],
                         np.float32).reshape(-1, 5, 2)
        flat = [c.image.reshape(-1) for c in self.crops] or [np.zeros(0, np.uint8)]
        with atomic_path(Path(path), suffix=".npz") as tmp:
            np.savez(tmp, flat=np.concatenate(flat), shapes=shapes, boxes=boxes,
                     landmarks=marks, labels=np.array(self.labels, np.int64),
                     hashes=np.array(self.hashes, str), sources=np.array(self.sources, str),
                     jobs=np.array(self.jobs, np.int64),
                     skipped=np.array(json.dumps(dict(self.skipped))))

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
            jobs = z["jobs"].tolist() if "jobs" in z else list(range(len(crops)))
            skipped = Counter(json.loads(str(z["skipped"]))) if "skipped" in z else Counter()
            return cls(crops, z["labels"].tolist(), z["hashes"].tolist(),
                       z["sources"].tolist(), skipped, jobs)

    @classmethod
    def merged(cls, parts: Sequence[CropSet]) -> CropSet:
        """Sets found from shares of the same images, in the order one process finds them
        (by image, each image's faces in their own order) and with their skips added up."""
        pairs = sorted(((job, p, i) for p, part in enumerate(parts)
                        for i, job in enumerate(part.jobs)), key=lambda t: t[0])
        out = cls(skipped=sum((part.skipped for part in parts), Counter()))
        for job, p, i in pairs:
            part = parts[p]
            out.crops.append(part.crops[i])
            out.labels.append(part.labels[i])
            out.hashes.append(part.hashes[i])
            out.sources.append(part.sources[i])
            out.jobs.append(job)
        return out


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


def _add(out: CropSet, detector: FaceDetector, frame: np.ndarray, source: str, label: int,
         job: int) -> None:
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
    out.jobs.append(job)


def media_files(path: Path) -> list[Path]:
    """The images and videos in a folder (recursively), or the file itself."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not path.exists():
        raise MotivnetError(f"data {path} does not exist")
    return [path]


Job = tuple[Path | None, np.ndarray | None, int]  # a file, or a synthetic image; its label


def _jobs(data: Sequence[Path], labelled: Path | None, synthetic: int, seed: int,
          classes: Sequence[str]) -> tuple[list[Job], Counter]:
    """The images and videos to search, in order, and the labelled set's skipped rows."""
    jobs: list[Job] = []
    skipped: Counter = Counter()
    if labelled is not None:
        lset = load_labelled(labelled, classes)
        skipped.update({f"label {k}": v for k, v in lset.skipped.items()})
        jobs += [(p, None, k) for p, k in zip(lset.paths, lset.labels, strict=True)]
    for d in data:
        jobs += [(p, None, -1) for p in media_files(d)]
    if not jobs and labelled is None and not data:
        jobs = [(None, f.image, f.label) for f in synth_faces(synthetic, seed=seed)]
    return jobs, skipped


def _find(jobs: Sequence[Job], share: Sequence[int], detector: FaceDetector, every: int,
          desc: str, progress: bool) -> CropSet:
    """The faces of the jobs at the positions ``share``."""
    out = CropSet()
    for j in track(share, desc, unit="image", enabled=progress):
        path, image, label = jobs[j]
        if image is not None:
            _add(out, detector, image, f"synthetic:{j}", label, j)
            continue
        if not Path(path).is_file():
            out.skipped["missing"] += 1
            continue
        for source, frame in _frames(Path(path), every, out.skipped):
            _add(out, detector, frame, source, label, j)
    return out


def collect(data: Sequence[Path] = (), labelled: Path | None = None,
            detector: FaceDetector | None = None, every: int = 10, synthetic: int = 2000,
            seed: int = 0, classes: Sequence[str] = AFFECTNET7, progress: bool = True,
            world: World = SINGLE, parts: Path | None = None) -> CropSet:
    """Face crops from ``data`` (image files, folders, videos), a ``labelled`` set, or, when
    both are empty, ``synthetic`` generated faces (labelled). With several processes
    (``world``) each searches its share of the images and every one gets all the faces, in
    the order one process finds them, through the folder ``parts``."""
    jobs, skipped = _jobs(data, labelled, synthetic, seed, classes)
    share = world.share(len(jobs))
    desc = f"finding faces, {world.label}" if world.distributed else "finding faces"
    out = _find(jobs, share, detector or FaceDetector(), every, desc, progress)
    if world.distributed:
        log.info("%s: %d face crops in %d of the %d images", desc, len(out), len(share),
                 len(jobs))
        out = _gather(out, world, parts or Path.cwd())
    out.skipped.update(skipped)
    if not out.crops:
        where = ", ".join(str(d) for d in [*data, labelled] if d) or "synthetic faces"
        raise MotivnetError(f"no face crops found in {where} ({dict(out.skipped) or 'no images'})")
    log.info("%d face crops; skipped: %s", len(out), dict(out.skipped) or "none")
    return out


def _gather(part: CropSet, world: World, folder: Path) -> CropSet:
    """Every rank's faces: each writes its part into ``folder`` and reads all of them."""
    def path(rank: int) -> Path:
        return folder / f"faces.part-{rank}-of-{world.size}.npz"

    folder.mkdir(parents=True, exist_ok=True)
    part.save(path(world.rank))
    world.barrier()
    missing = [path(r) for r in range(world.size) if not path(r).is_file()]
    if missing:
        raise MotivnetError(f"{world.label} cannot see {missing[0]}, another rank's faces: the "
                            f"output folder must be on storage every node sees")
    parts = [part if r == world.rank else CropSet.load(path(r)) for r in range(world.size)]
    world.barrier()
    path(world.rank).unlink()
    return CropSet.merged(parts)
