"""``motivnet-edge service``: the systemd unit for this install, printed or written.

The shipped unit (``motivnet-edge.service`` beside this file) is the template; its ``ExecStart``
becomes this install's own executable (a venv's or pipx's ``bin/motivnet-edge``) and the
config's absolute path, and ``User``/``Group`` the account it runs as. An install or config
under /home or /root gets ``ProtectHome=read-only`` instead of ``yes``, or the unit could not
start it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path

TEMPLATE = Path(__file__).resolve().parent / "motivnet-edge.service"


def executable() -> list[str]:
    """The command that runs this install: its console script when there is one beside the
    interpreter (a venv, pipx), else the interpreter with ``-m``."""
    script = Path(sys.executable).parent / "motivnet-edge"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "motivnet_edge.cli"]


def unit_text(config: Path, user: str = "motivnet", command: list[str] | None = None) -> str:
    command = command or executable()
    exec_start = shlex.join([*command, "run", "--config", str(config)])
    lines = []
    for line in TEMPLATE.read_text().splitlines():
        key = line.split("=", 1)[0]
        if key == "ExecStart":
            line = f"ExecStart={exec_start}"
        elif key in ("User", "Group"):
            line = f"{key}={user}"
        elif key == "ProtectHome" and any(p.startswith(("/home/", "/root/"))
                                          for p in (str(config), command[0])):
            line = "ProtectHome=read-only"
        lines.append(line)
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge service``."""
    p.add_argument("--config", type=Path, required=True, help="the daemon's config file")
    p.add_argument("--user", default="motivnet", help="the account the daemon runs as")
    p.add_argument("--write", type=Path, help="write the unit here (e.g. "
                   "/etc/systemd/system/motivnet-edge.service) instead of printing it")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge service``: the systemd unit for this install, printed or written."""
    config = args.config.resolve()
    if not config.is_file():
        raise MotivnetError(f"config {args.config} does not exist")
    text = unit_text(config, args.user)
    if args.write is None:
        sys.stdout.write(text)
        return 0
    with atomic_path(args.write) as tmp:
        tmp.write_text(text)
    print(f"wrote {args.write}; then: systemctl daemon-reload && systemctl enable --now "
          f"{args.write.stem}", file=sys.stderr)
    return 0
