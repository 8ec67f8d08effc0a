"""The processes of one distillation: a single process, or torchrun's ranks on one or several
nodes (torch.distributed: NCCL between GPUs, gloo on CPUs).

torchrun gives each process ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
address; :func:`join` reads them and joins the process group, :meth:`World.leave` leaves it.
Everything else asks the :class:`World` what its share is: :meth:`World.share` splits a list
of work items by position (face finding, the teacher pass), :meth:`World.main_first` lets rank 0
build something once (the demo teacher) before the others read it, and the checkpoints, logs,
export, INT8 and the gate are rank 0's alone. Ranks hand over through files in the output
folder and the teacher cache, so on several nodes both must be on storage every node sees.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)
# the longest one rank waits for the others at a barrier (rank 0 builds the demo teacher or
# evaluates an epoch while they wait; a teacher pass is balanced between barriers)
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True in the process that writes files and prints (rank 0, or the only one)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def label(self) -> str:
        return f"rank {self.rank} of {self.size}"

    def share(self, n: int) -> range:
        """This rank's positions among ``n`` work items: every size-th one from its rank, so
        the shares differ by at most one item and together are all of them."""
        return range(self.rank, n, self.size)

    def device(self, name: str) -> str:
        """``cuda`` means this process's own GPU (its local rank) when there are several."""
        if name == "cuda" and self.distributed:
            return f"cuda:{self.local_rank}"
        return name

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (and builds what it builds); the others then run it."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def split_batch(self, batch: int) -> int:
        """This rank's part of a step's ``batch`` (the whole step's batch, as one process
        would take it)."""
        if batch % self.size or batch // self.size < 2:
            raise MotivnetError(f"--batch {batch} must split evenly over the {self.size} "
                                f"processes, at least 2 faces each (e.g. --batch "
                                f"{max(2, -(-batch // self.size)) * self.size})")
        return batch // self.size

    def leave(self) -> None:
        """Leave the process group; rank 0, which goes on alone (export, INT8, the gate), gets
        the CPU threads torchrun took from it back."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        if self.main:
            torch.set_num_threads(len(os.sched_getaffinity(0)))


SINGLE = World()


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def join(device: str) -> World:
    """The world this process belongs to: joined to torchrun's process group when launched
    by it (NCCL for ``cuda``, gloo otherwise), else a single process."""
    if not launched():
        return SINGLE
    try:
        world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                      int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError) as exc:
        raise MotivnetError(f"WORLD_SIZE is set but RANK or LOCAL_RANK is missing or not a "
                            f"number ({exc}): start the processes with torchrun") from None
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        if torch.cuda.device_count() <= world.local_rank:
            raise MotivnetError(f"{world.label} is local rank {world.local_rank} but this node "
                                f"has {torch.cuda.device_count()} GPUs: --nproc-per-node at "
                                f"most the GPUs of a node")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        # torchrun's store outlives a restart of the workers: a restarted group that read the
        # dead processes' addresses from it could not connect, so each attempt has its own keys
        store, rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT, rank=rank,
                                world_size=size,
                                store=dist.PrefixStore(f"motivnet-attempt-{attempt}", store))
    log.info("%s (local rank %d) joined the process group on %s", world.label,
             world.local_rank, dist.get_backend())
    return world

