"""Labelled real images in two common layouts: class-named folders, or a CSV of image,emotion."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, SYNONYMS, canonical

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class LabelledSet:
    """Image paths with class indices into ``classes``; ``skipped`` counts labels left out
    (not among ``classes``) by label name."""

    paths: list[Path]
    labels: list[int]
    classes: tuple[str, ...]
    skipped: Counter = field(default_factory=Counter)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _class_index(name: str, classes: Sequence[str], where: str) -> int | None:
    """Index of label ``name`` in ``classes``; None for a known emotion outside ``classes``."""
    if name.strip().lower() not in SYNONYMS:
        raise MotivnetError(f"{where}: unknown emotion label {name!r}")
    c = canonical(name)
    return list(classes).index(c) if c in classes else None


def _from_csv(path: Path, classes: Sequence[str]) -> LabelledSet:
    out = LabelledSet([], [], tuple(classes))
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = {c.lower(): c for c in (reader.fieldnames or [])}
        img_col = next((cols[c] for c in ("image", "path", "file", "filename") if c in cols), None)
        lab_col = next((cols[c] for c in ("emotion", "label", "class", "expression")
                        if c in cols), None)
        if img_col is None or lab_col is None:
            raise MotivnetError(f"{path}: needs an image column and an emotion column, "
                                f"found {reader.fieldnames}")
        base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
        for row_no, row in enumerate(reader, start=2):
            k = _class_index(row[lab_col], classes, f"{path} line {row_no}")
            if k is None:
                out.skipped[canonical(row[lab_col])] += 1
                continue
            image = Path(row[img_col])
            if not image.is_absolute():
                image = base / image if (base / image).exists() else path.parent / image
            out.paths.append(image)
            out.labels.append(k)
    return out


def _from_folders(root: Path, classes: Sequence[str]) -> LabelledSet:
    out = LabelledSet([], [], tuple(classes))
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        k = _class_index(sub.name, classes, f"folder {sub}")
        images = list_images(sub)
        if k is None:
            out.skipped[canonical(sub.name)] += len(images)
            continue
        out.paths += images
        out.labels += [k] * len(images)
    return out


def load_labelled(source: str | Path, classes: Sequence[str] = AFFECTNET7) -> LabelledSet:
    """Read a labelled set from a CSV file (columns image,emotion; a folder holding
    ``labels.csv`` works too) or from class-named folders (``happy/``, ``Anger/`` ...).
    Label names are mapped through :data:`motivnet_edge.targets.labels.SYNONYMS`; labels not
    in ``classes`` (e.g. contempt for a 7-class model) are skipped and counted."""
    path = Path(source)
    if not path.exists():
        raise MotivnetError(f"labelled data {path} does not exist")
    if path.is_dir() and (path / "labels.csv").is_file():
        path = path / "labels.csv"
    result = _from_csv(path, classes) if path.is_file() else _from_folders(path, classes)
    if not result.paths:
        raise MotivnetError(f"labelled data {path} holds no images with labels in {classes}")
    return result
