"""``motivnet-edge classify PATH...``: what emotion each face in photos, a folder, a video or a
camera shows, one line (or one JSON object) per face.

The same detector, crop and engine as the daemon (the :class:`~motivnet_edge.edge.pipeline.
Pipeline`), with the shipped model unless ``--model`` names another; no torch. Every path is
checked before the model loads; a file that cannot be read as an image or a video is named on
stderr, the others are still classified, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from motivnet_edge.edge.assemble import open_pipeline
from motivnet_edge.edge.config import (
    DETECTOR_ENGINES,
    CameraConfig,
    DetectorConfig,
    ModelConfig,
    PipelineConfig,
    source_kind,
)
from motivnet_edge.edge.data.labelled import IMAGE_SUFFIXES, list_images
from motivnet_edge.edge.detect import KINDS
from motivnet_edge.edge.pipeline import Pipeline, draw_faces
from motivnet_edge.edge.readers import CannotOpen, check_source, open_reader, redact
from motivnet_edge.edge.shipped import default_model
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path

log = logging.getLogger(__name__)


class Unreadable(Exception):
    """A source that exists but is no image or video OpenCV can read."""


def expand(paths: list[str]) -> list[str | int]:
    """The sources behind the arguments: a camera index as an int, a folder's images in order,
    files as given. A path that does not exist, or a folder without images, is an error."""
    sources: list[str | int] = []
    for p in paths:
        if p.isdigit():
            sources.append(int(p))
        elif source_kind(CameraConfig(source=p)) != "file":  # a device, camera, pipeline, URL
            sources.append(p)
        elif Path(p).is_dir():
            images = list_images(Path(p))
            if not images:
                raise MotivnetError(f"{p}: folder holds no images "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            sources += [str(i) for i in images]
        elif Path(p).is_file():
            sources.append(p)
        else:
            raise MotivnetError(f"{p} does not exist (a photo, a folder of photos, a video file, "
                                f"or a camera as the daemon's config names it: 0, /dev/video0, "
                                f"libcamera:0, a GStreamer pipeline, a URL)")
    return sources


def frames(source: str | int, every: int, max_frames: int | None
           ) -> Iterator[tuple[int | None, np.ndarray]]:
    """(frame number or None for a photo, BGR frame) of one source; :class:`Unreadable` when
    OpenCV reads nothing from it."""
    if isinstance(source, str) and Path(source).suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(source)
        if image is None:
            raise Unreadable(f"{source}: cannot be read as an image (damaged, or not "
                             f"{Path(source).suffix} inside)")
        yield None, image
        return
    cam = CameraConfig(name="classify", source=source)  # read as the daemon reads it
    try:
        check_source(cam, redact(source))
        reader = open_reader(cam)
    except (MotivnetError, CannotOpen) as exc:
        raise Unreadable(str(exc)) from exc
    try:
        index = done = 0
        for frame in reader.frames:
            if max_frames is not None and done >= max_frames:
                break
            if index % every == 0:
                done += 1
                yield index, frame
            index += 1
        if index == 0:
            raise Unreadable(f"{redact(source)}: no frame could be read "
                             f"({reader.stopped_because or 'it stopped at once'})")
    finally:
        reader.close()


def face_line(name: str, number: int, count: int, face: dict) -> str:
    x, y, w, h = face["box"]
    probs = " ".join(f"{k}={v:.3f}" for k, v in face["probs"].items())
    values = "".join(f"\t{k} {face[k]:+.3f}" for k in ("valence", "arousal") if k in face)
    if values and face.get("va_source") == "derived":
        values += " (derived from the classes)"
    return (f"{name}\tface {number}/{count}\tbox {x},{y},{w},{h}\t{face['label']} "
            f"{face['score']:.3f}\t{probs}{values}")


def annotated_name(source: str | int, frame: int | None) -> str:
    stem = f"camera{source}" if isinstance(source, int) else Path(source).stem
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    return f"{stem}.jpg" if frame is None else f"{stem}-{frame:06d}.jpg"


def write_image(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise MotivnetError(f"cannot write {path}")


def build(args: argparse.Namespace) -> Pipeline:
    return open_pipeline(
        args.model if args.model is not None else default_model(), args.target, args.engine,
        args.threads, DetectorConfig(kind=args.detector, engine=args.detector_engine,
                                     threads=args.threads, score_threshold=args.score_threshold,
                                     min_size=args.min_size),
        box_crop_fallback=args.detector == "haar",
        derive_values=args.derive_valence_arousal, max_faces=args.max_faces)[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge classify``."""
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="photos, folders of photos, video files, or a camera index (0)")
    p.add_argument("--model", type=Path, help="an artifact or a compress output folder "
                   "(default: the emotion model shipped in the package)")
    p.add_argument("--target", default=ModelConfig.target,
                   help="a profile from 'motivnet-edge targets'")
    p.add_argument("--engine", help="override the profile's engine")
    p.add_argument("--threads", type=int, help="inference threads (default: the engine's)")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument("--annotate", type=Path, metavar="DIR",
                   help="write each picture with faces, boxes and labels drawn, into DIR")
    p.add_argument("--detector", choices=KINDS, default=DetectorConfig.kind)
    p.add_argument("--detector-engine", choices=DETECTOR_ENGINES, default=DetectorConfig.engine,
                   help="where YuNet runs: auto (the classifier's engine where it can), opencv "
                        "(OpenCV's DNN, the reference), onnxruntime, openvino")
    p.add_argument("--derive-valence-arousal", action="store_true",
                   help="for a model without valence/arousal outputs, derive them from the "
                        "class probabilities (published circumplex coordinates; marked derived)")
    p.add_argument("--score-threshold", type=float, default=DetectorConfig.score_threshold,
                   help="the detector's minimum face score")
    p.add_argument("--min-size", type=int, default=DetectorConfig.min_size,
                   help="smallest face side in pixels")
    p.add_argument("--max-faces", type=int, default=PipelineConfig.max_faces,
                   help="faces per picture, largest first")
    p.add_argument("--every", type=int, default=1, help="videos: every N-th frame")
    p.add_argument("--max-frames", type=int,
                   help="videos and cameras: stop after N processed frames (a camera runs "
                        "until interrupted without it)")


def check_args(args: argparse.Namespace) -> None:
    for name in ("every", "max_faces", "min_size", "max_frames", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise MotivnetError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    if not 0.0 < args.score_threshold < 1.0:
        raise MotivnetError(f"--score-threshold {args.score_threshold}: must be in (0, 1)")
    if args.model is not None and not args.model.exists():
        raise MotivnetError(f"--model {args.model} does not exist")
    if args.annotate is not None and args.annotate.exists() and not args.annotate.is_dir():
        raise MotivnetError(f"--annotate {args.annotate} is a file, not a folder")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge classify``: one line per face of every photo, video frame or camera frame; 2
    when a source could not be read."""
    check_args(args)
    sources = expand(args.paths)
    pipeline = build(args)
    failed, counts = [], {"pictures": 0, "faces": 0}
    try:
        for source in sources:
            try:
                for number, frame in frames(source, args.every, args.max_frames):
                    name = str(source) if number is None else f"{source}#{number}"
                    faces = pipeline.process(str(source), frame).faces
                    counts["pictures"] += 1
                    counts["faces"] += len(faces)
                    for i, face in enumerate(faces, 1):
                        if args.json:
                            print(json.dumps({"source": str(source), "frame": number,
                                              "face": i, **face}), flush=True)
                        else:
                            print(face_line(name, i, len(faces), face), flush=True)
                    if not faces and not args.json:
                        print(f"{name}\tno face", flush=True)
                    if args.annotate is not None and (faces or number is None):
                        write_image(args.annotate / annotated_name(source, number),
                                    draw_faces(frame, faces))
            except Unreadable as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed.append(str(source))
    finally:
        pipeline.close()
    print(f"{counts['faces']} faces in {counts['pictures']} pictures"
          + (f"; {len(failed)} unreadable: {', '.join(failed)}" if failed else ""),
          file=sys.stderr)
    return 2 if failed else 0
