"""Figures of a process from Linux's /proc/<pid>/status."""

from __future__ import annotations

from pathlib import Path


def status_value(field: str, pid: int | str = "self") -> int | None:
    """The number of ``field`` in /proc/<pid>/status (kB for memory fields, a count for
    Threads); None without procfs or once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def status_mb(field: str, pid: int | str = "self") -> float | None:
    """``field`` of /proc/<pid>/status (VmRSS: resident now; VmHWM: peak resident, which starts
    afresh at exec) in MB; None without procfs or once the process is gone."""
    kb = status_value(field, pid)
    return None if kb is None else kb / 1024.0
