"""Writing files so that nothing is half-written: a temporary name beside the final one, renamed
into place only when complete, with the mode any new file gets (0644 under the usual umask, not
the 0600 of a temporary file). And the sha256 of a file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Where the project caches what it can make again (the demo teacher, the teacher's
    outputs, emulated device roots): $MOTIVNET_CACHE, else $XDG_CACHE_HOME/motivnet-edge, else
    ~/.cache/motivnet-edge."""
    if os.environ.get("MOTIVNET_CACHE"):
        return Path(os.environ["MOTIVNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "motivnet-edge"


def default_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``final`` that is renamed onto it only if the block succeeds;
    a killed or failed run leaves nothing under the final name."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix,
                               dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, default_mode())
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    """``data`` written as indented JSON, atomically (a temporary name, then renamed)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The file's sha256 as hex, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
