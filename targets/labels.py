"""Emotion class names, their published order, and mapping of free-form label names onto them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from motivnet_edge.targets.errors import MotivnetError

# Index order of the published 7-class MotivNet (AffectNet-7).
AFFECTNET7: tuple[str, ...] = (
    "Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger",
)
# The earlier 8-class variant appends Contempt.
AFFECTNET8: tuple[str, ...] = AFFECTNET7 + ("Contempt",)
# FER2013's order, a common source of silent label mix-ups.
FER2013: tuple[str, ...] = (
    "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral",
)

SYNONYMS: dict[str, str] = {
    "neutral": "Neutral", "calm": "Neutral",
    "happy": "Happiness", "happiness": "Happiness", "joy": "Happiness",
    "sad": "Sadness", "sadness": "Sadness",
    "surprise": "Surprise", "surprised": "Surprise",
    "fear": "Fear", "fearful": "Fear", "afraid": "Fear", "scared": "Fear",
    "disgust": "Disgust", "disgusted": "Disgust",
    "anger": "Anger", "angry": "Anger",
    "contempt": "Contempt",
}


def canonical(name: str) -> str:
    """Map a label name such as ``happy`` or ``ANGRY`` onto its canonical class name."""
    key = name.strip().lower()
    if key not in SYNONYMS:
        raise MotivnetError(f"unknown emotion label {name!r}; known: {sorted(SYNONYMS)}")
    return SYNONYMS[key]


def reorder_index(source: Sequence[str], target: Sequence[str]) -> list[int]:
    """For each class of ``target``, the index of the same class in ``source``.

    ``probs_target = probs_source[..., reorder_index(source, target)]``.
    """
    src = [canonical(n) for n in source]
    index = []
    for name in target:
        c = canonical(name)
        if c not in src:
            raise MotivnetError(f"class {name!r} of {list(target)} is missing from {list(source)}")
        index.append(src.index(c))
    return index


def parse_label_list(text: str | Iterable[str]) -> list[str]:
    """Parse ``"angry,disgust,fear"`` (or a list) into canonical class names, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [canonical(x) for x in items if x.strip()]
    if len(set(names)) != len(names):
        raise MotivnetError(f"label list {items} names a class twice")
    return names
