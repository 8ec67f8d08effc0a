"""The emotion model shipped inside the package: the default of the daemon, ``classify`` and
``bench`` when no artifact is given.

It is a compress output folder like any other (``manifest.json`` with the sha256 of each file,
every artifact carrying its own metadata), so a target profile picks its file from it as from a
folder made by ``motivnet-edge compress``; its card, ``MODEL.md``, says how it was made and how
well it does.
"""

from __future__ import annotations

from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.manifest import MANIFEST

MODEL_DIR = Path(__file__).resolve().parent / "models" / "emotion"
CARD = MODEL_DIR / "MODEL.md"


def default_model() -> Path:
    """The shipped model's folder; a clear error when this install lacks it."""
    if not (MODEL_DIR / MANIFEST).is_file():
        raise MotivnetError(f"this install has no shipped emotion model ({MODEL_DIR / MANIFEST} "
                            f"is missing): give an artifact or a compress output folder")
    return MODEL_DIR
