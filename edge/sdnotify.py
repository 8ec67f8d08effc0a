"""systemd's notification protocol (sd_notify), spoken directly: one datagram per state to the
socket in ``$NOTIFY_SOCKET``. Without systemd (no such variable) every call does nothing.

The daemon sends ``READY=1`` once the first frame is processed (or once it has waited
:data:`READY_AFTER` seconds for a camera that gives none, so an absent camera does not fail the
unit's start), ``WATCHDOG=1`` from its frame loop at half the unit's ``WatchdogSec=`` (so a hung
engine is restarted), ``RELOADING=1`` and ``READY=1`` around a SIGHUP reload, ``STOPPING=1``
at exit, and ``STATUS=`` lines a person reads in ``systemctl status``.
"""

from __future__ import annotations

import os
import socket
import time

READY_AFTER = 60.0  # seconds without a first frame before the daemon says READY anyway


class Notifier:
    def __init__(self, env: dict | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self.address = address or None
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_every = int(watchdog_usec) / 2e6 if watchdog_usec.isdigit() and mine \
            else None
        self._last_ping = 0.0
        self._sock = None
        self.ready = False

    def send(self, *states: str) -> None:
        if self.address is None:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.sendto("\n".join(states).encode(), self.address)
        except OSError:  # systemd went away: nothing to tell
            pass

    def mark_ready(self, status: str) -> None:
        if not self.ready:
            self.ready = True
            self.send("READY=1", f"STATUS={status}")

    def ping(self) -> None:
        """WATCHDOG=1, at most every half watchdog period."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_every:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def reloading(self) -> None:
        self.ready = False
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the config")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")
