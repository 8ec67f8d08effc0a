"""The teacher's outputs, computed once and kept on disk.

Sharded ``.npz`` files under ``<root>/<teacher key>/``, each written atomically, keyed by the
crop's content hash; the teacher key covers the teacher's identity, preprocessing and label
map. A killed run loses at most the shard it was filling; the next run computes only what is
missing, so the expensive GPU pass is paid once and students train anywhere. Several processes
split the missing faces between them, each writing its own shards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.distil.world import SINGLE, World
from motivnet_edge.compress.progress import Progress
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.preprocess import FaceImage

log = logging.getLogger(__name__)


class TeacherCache:
    """With several processes (``world``) each rank computes its share of the missing faces
    into shards of its own (``shard-r<rank>-*``), then every rank reads all of them."""

    def __init__(self, root: Path, teacher_key: str, shard_size: int = 256,
                 world: World = SINGLE) -> None:
        self.dir = Path(root) / teacher_key
        self.shard_size, self.world = shard_size, world
        self.known: dict[str, np.ndarray] = {}
        self._read: set[str] = set()
        self._next = 0  # this process's next shard number
        self._load()

    def _load(self) -> None:
        """Read the shards not read yet."""
        for shard in sorted(self.dir.glob("shard-*.npz")):
            if shard.name not in self._read:
                with np.load(shard) as z:
                    self.known.update(zip(z["hashes"].tolist(), z["logits"], strict=True))
                self._read.add(shard.name)

    def _write(self, hashes: list[str], logits: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        prefix = f"shard-r{self.world.rank}-" if self.world.distributed else "shard-"
        while (path := self.dir / f"{prefix}{self._next:05d}.npz").exists():
            self._next += 1  # the first free name, found once: later writes follow it
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, hashes=np.array(hashes), logits=logits)
        self._read.add(path.name)
        self.known.update(zip(hashes, logits, strict=True))

    def logits(self, hashes: Sequence[str], crops: Sequence[FaceImage],
               predict: Callable[[list[FaceImage]], np.ndarray], progress: bool = True,
               batch: int = 32, desc: str = "teacher") -> np.ndarray:
        """Teacher logits for every crop, computing (and storing) only those not cached."""
        world = self.world
        world.barrier()  # every rank starts from the same cache, so all split the same list
        todo = [i for i, h in enumerate(hashes) if h not in self.known]
        seen: set[str] = set()
        todo = [i for i in todo if not (hashes[i] in seen or seen.add(hashes[i]))]
        log.info("%s: %d of %d faces cached in %s, %d to compute", desc,
                 len(hashes) - len(todo), len(hashes), self.dir, len(todo))
        mine = [todo[i] for i in world.share(len(todo))]
        who = f"{desc}, {world.label}" if world.distributed else desc
        start = time.monotonic()
        bar = Progress(len(mine), who, "face", progress)
        for first in range(0, len(mine), self.shard_size):
            chunk = mine[first:first + self.shard_size]
            outs = [predict([crops[i] for i in chunk[b:b + batch]])
                    for b in range(0, len(chunk), batch)]
            self._write([hashes[i] for i in chunk], np.concatenate(outs).astype(np.float32))
            bar.update(len(chunk))
        bar.close()
        took = time.monotonic() - start
        if todo:
            log.info("%s: computed %d faces in %.2f s (%.1f faces/s)%s", who, len(mine),
                     took, len(mine) / max(took, 1e-9),
                     f", its share of the {len(todo)}" if world.distributed else "")
        if world.distributed:
            world.barrier()
            self._load()
        missing = sum(h not in self.known for h in hashes)
        if missing:
            raise MotivnetError(f"{missing} teacher outputs are missing from {self.dir} after "
                                f"every rank's pass: the cache must be on storage every node "
                                f"sees (--cache-dir)")
        return np.stack([self.known[h] for h in hashes])
