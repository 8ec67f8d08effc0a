"""One way to put a pipeline together, for the daemon, ``motivnet-edge classify`` and the
Python API: the target profile resolved, the model loaded in its engine, the face detector
opened beside it (preferring the model's engine), and the :class:`Pipeline`; the engine closed
again when any later step fails."""

from __future__ import annotations

import logging
import os

from motivnet_edge.edge.config import DetectorConfig, PipelineConfig
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.pipeline import Pipeline
from motivnet_edge.edge.tracker import TrackerSettings
from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.profiles import resolve

log = logging.getLogger(__name__)


def open_pipeline(model: str | os.PathLike, target: str = "auto", engine: str | None = None,
                  threads: int | None = 1, detector: DetectorConfig | None = None,
                  tracking: TrackerSettings | None = None,
                  max_faces: int = PipelineConfig.max_faces, box_crop_fallback: bool = False,
                  derive_values: bool = False, cache_dir: str | None = None
                  ) -> tuple[Pipeline, str]:
    """The pipeline for ``model`` (an artifact or a compress output folder) on ``target``, and
    the profile it resolved to. ``detector``: the daemon's ``detector`` section (YuNet,
    shipped model, every frame, by default)."""
    det = detector or DetectorConfig()
    path, kind, options, resolved = resolve(target, model, engine, threads, cache_dir)
    loaded = load_engine(path, kind, options)
    log.debug("target %s: %s on %s %s", resolved, path.name, loaded.name, loaded.settings)
    try:
        faces = FaceDetector(det.model, det.score_threshold, min_size=det.min_size,
                             max_side=det.max_side, scale_factor=det.scale_factor,
                             kind=det.kind, engine=det.engine, prefer=loaded.name,
                             threads=det.threads)
        log.debug("face detector: %s in %s", det.kind, faces.engine)
        return Pipeline(faces, loaded, max_faces, tracking or TrackerSettings(smoothing=0.0),
                        box_crop_fallback, derive_values, det.every,
                        det.change_threshold), resolved
    except MotivnetError:
        loaded.close()
        raise
