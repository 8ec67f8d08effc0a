"""The built-in demo teacher: the tiny MotivNet trained on synthetic faces, cached on disk.

``compress`` uses it when no teacher is given, so the whole chain runs with nothing downloaded.
It is trained once (a few minutes on 2 CPU cores) and saved as a MotivNet state dict with the
published key names, then loaded through the same loader as a real ``MotivNet.pth``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.distil.data import collect, split_index
from motivnet_edge.compress.distil.train import train
from motivnet_edge.compress.models.checkpoints import save_checkpoint
from motivnet_edge.compress.models.motivnet import build_motivnet, crop_spec_for
from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.files import cache_dir, write_json

log = logging.getLogger(__name__)
MODEL = "motivnet-tiny"
# A ViT from scratch needs a few hundred steps at full learning rate before it finds the
# expression cues (measured here: ~150-250 steps to take off); 8 epochs of ~48 steps give room
# while the whole demo stays within minutes.
RECIPE = {"model": MODEL, "faces": 1800, "seed": 1000, "epochs": 8,
          "batch": 32, "lr": 1e-3, "augment": 0.3, "version": 3}


def demo_teacher_path(recipe: dict = RECIPE) -> Path:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"demo-teacher-{recipe['model']}-{digest}.pth"


def ensure_demo_teacher(recipe: dict = RECIPE, detector: FaceDetector | None = None,
                        progress: bool = True) -> Path:
    """Path of the trained demo teacher, training it first if it is not cached."""
    path = demo_teacher_path(recipe)
    if path.is_file():
        return path
    log.info("training the demo teacher (%s on %d synthetic faces, %d epochs); cached at %s",
             recipe["model"], recipe["faces"], recipe["epochs"], path)
    torch.manual_seed(recipe["seed"])
    data = collect(detector=detector, synthetic=recipe["faces"], seed=recipe["seed"],
                   progress=progress)
    tr, va = split_index(data.hashes, 0.15)
    labels = np.asarray(data.labels)
    model = build_motivnet(recipe["model"])
    cfg = TrainConfig(epochs=recipe["epochs"], batch=recipe["batch"], lr=recipe["lr"],
                      weight_decay=0.05, seed=recipe["seed"], augment=recipe["augment"],
                      warmup_epochs=0.5)
    history = train(model, crop_spec_for(recipe["model"]), [data.crops[i] for i in tr], None,
                    labels[tr], [data.crops[i] for i in va], None, labels[va], cfg,
                    progress=progress, desc="demo teacher")
    save_checkpoint(model.state_dict(), path)
    write_json(path.with_suffix(".json"), {"recipe": recipe, "history": history})
    log.info("demo teacher: held-out accuracy %.3f", history[-1].get("accuracy", float("nan")))
    return path
