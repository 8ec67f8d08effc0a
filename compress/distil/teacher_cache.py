"""The teacher's outputs, computed once and kept on disk.

Sharded ``.npz`` files under ``<root>/<teacher key>/``, each written atomically, keyed by the
crop's content hash; the teacher key covers the teacher's identity, preprocessing and label
map. A killed run loses at most the shard it was filling; the next run computes only what is
missing, so the expensive GPU pass is paid once and students train anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.progress import Progress
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.preprocess import FaceImage

log = logging.getLogger(__name__)


class TeacherCache:
    def __init__(self, root: Path, teacher_key: str, shard_size: int = 256) -> None:
        self.dir = Path(root) / teacher_key
        self.shard_size = shard_size
        self.known: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            with np.load(shard) as z:
                self.known.update(zip(z["hashes"].tolist(), z["logits"], strict=True))

    def _write(self, hashes: list[str], logits: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.dir.glob("shard-*.npz")))
        with atomic_path(self.dir / f"shard-{n:05d}.npz", suffix=".npz") as tmp:
            np.savez(tmp, hashes=np.array(hashes), logits=logits)
        self.known.update(zip(hashes, logits, strict=True))

    def logits(self, hashes: Sequence[str], crops: Sequence[FaceImage],
               predict: Callable[[list[FaceImage]], np.ndarray], progress: bool = True,
               batch: int = 32, desc: str = "teacher") -> np.ndarray:
        """Teacher logits for every crop, computing (and storing) only those not cached."""
        todo = [i for i, h in enumerate(hashes) if h not in self.known]
        seen: set[str] = set()
        todo = [i for i in todo if not (hashes[i] in seen or seen.add(hashes[i]))]
        log.info("%s: %d of %d faces cached in %s, %d to compute", desc,
                 len(hashes) - len(todo), len(hashes), self.dir, len(todo))
        bar = Progress(len(todo), desc, "face", progress)
        for start in range(0, len(todo), self.shard_size):
            chunk = todo[start:start + self.shard_size]
            outs = [predict([crops[i] for i in chunk[b:b + batch]])
                    for b in range(0, len(chunk), batch)]
            self._write([hashes[i] for i in chunk], np.concatenate(outs).astype(np.float32))
            bar.update(len(chunk))
        bar.close()
        return np.stack([self.known[h] for h in hashes])
