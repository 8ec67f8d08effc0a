"""Progress of long work: a bar on a terminal, plain lines in a log or CI.

A carriage-return bar written to a file is noise, so the bar is drawn only when stderr is a
terminal; otherwise a line is logged when a tenth more is done, and at most every 30 seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

log = logging.getLogger("motivnet_edge.progress")


class Progress:
    """``with Progress(total, "teacher") as p: ... p.update(n)``; ``enabled=False`` is silent."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True,
                 every_s: float = 30.0) -> None:
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.enabled = enabled and self.total > 0
        self.done = 0
        self.every_s = every_s
        self.postfix = ""
        self._bar = None
        self._t0 = self._last_t = time.monotonic()
        self._last_tenth = 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False)

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        if postfix:
            self.postfix = ", ".join(f"{k} {v}" for k, v in postfix.items())
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix)
            return
        tenth = self.done * 10 // self.total
        now = time.monotonic()
        if tenth > self._last_tenth or now - self._last_t >= self.every_s:
            self._last_tenth, self._last_t = tenth, now
            rate = self.done / max(now - self._t0, 1e-9)
            log.info("%s: %d/%d %s (%.0f %%, %.1f %s/s, %s left)%s", self.desc, self.done,
                     self.total, self.unit, 100.0 * self.done / self.total, rate, self.unit,
                     clock((self.total - self.done) / max(rate, 1e-9)),
                     f", {self.postfix}" if self.postfix else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clock(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``12 s``: a duration for a progress line."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def track(items: Iterable, desc: str, total: int | None = None, unit: str = "it",
          enabled: bool = True) -> Iterator:
    """Iterate over ``items`` showing progress."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    with Progress(total if total is not None else len(items), desc, unit, enabled) as p:
        for item in items:
            yield item
            p.update()
