"""Valence and arousal derived from class probabilities, for a model that predicts classes only:
the probability-weighted mean of each class's place on the circumplex of affect.

The places are Russell and Mehrabian's ratings of emotion terms on pleasure (valence) and arousal,
each -1..1 (J. A. Russell and A. Mehrabian, "Evidence for a three-factor theory of emotions",
Journal of Research in Personality 11:273-294, 1977), in the widely reused table of the six
basic emotions that P. Gebhard's ALMA ("ALMA: a layered model of affect", AAMAS 2005) and
affective-computing code copy from it. Copies differ for two classes: fear is given as
(-0.64, 0.60) or (-0.62, 0.82) and happiness as (0.81, 0.51) or (0.76, 0.48); the first of
each, ALMA's, is used. Neutral is the circumplex's origin by definition. Contempt has no rating
in that table and gets none here.

What the derived figure carries is direction, not intensity: a face the model calls happy with
probability 0.9 gets 0.9 of happiness's valence whether it smiles faintly or laughs. Only a model
trained on valence and arousal (a continuous teacher) measures intensity within a class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from motivnet_edge.targets.errors import MotivnetError

SOURCE = ("Russell & Mehrabian 1977 (J. Research in Personality 11:273-294), pleasure and "
          "arousal of the basic emotions as tabulated in Gebhard's ALMA (2005)")
# class -> (valence, arousal), each -1..1
COORDINATES: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Happiness": (0.81, 0.51),
    "Sadness": (-0.63, -0.27),
    "Surprise": (0.40, 0.67),
    "Fear": (-0.64, 0.60),
    "Disgust": (-0.60, 0.35),
    "Anger": (-0.51, 0.59),
}


def coordinates(labels: Sequence[str]) -> np.ndarray:
    """(classes, 2) valence and arousal of each label, in ``labels`` order; a label without
    published coordinates is named."""
    missing = [lab for lab in labels if lab not in COORDINATES]
    if missing:
        raise MotivnetError(f"derived valence/arousal: no published circumplex coordinates for "
                            f"{', '.join(missing)} (known: {', '.join(COORDINATES)})")
    return np.array([COORDINATES[lab] for lab in labels], np.float32)


def derive(probs: np.ndarray, table: np.ndarray) -> dict[str, np.ndarray]:
    """Valence and arousal of probability rows (N, classes) with ``table`` from
    :func:`coordinates`: each the probability-weighted mean of the classes' places."""
    va = np.asarray(probs, np.float32) @ table
    return {"valence": va[:, 0], "arousal": va[:, 1]}
