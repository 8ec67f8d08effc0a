"""The shipped systemd unit is valid and sandboxed, checked by systemd's own analyser."""

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "edge" / "packaging" / "motivnet-edge.service"

pytestmark = pytest.mark.skipif(not shutil.which("systemd-analyze"),
                                reason="needs systemd-analyze")


@pytest.fixture
def unit(tmp_path) -> Path:
    # verify checks that ExecStart's binary exists; point it at one that does
    text = UNIT.read_text().replace("/usr/local/bin/motivnet-edge", shutil.which("true"))
    path = tmp_path / "motivnet-edge.service"
    path.write_text(text)
    return path


def test_unit_verifies(unit):
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_unit_is_sandboxed(unit):
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, timeout=60)
    last = res.stdout.strip().splitlines()[-1]
    exposure = float(last.split("level for")[1].split(":")[1].split()[0])
    assert exposure <= 3.0, last  # systemd rates 0-10; "OK" is below 4
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=motivnet",
                    "Restart=on-failure"):
        assert setting in UNIT.read_text()


def test_service_command_writes_a_unit_for_this_install(tmp_path):
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("model: {artifact: out}\n")
    unit = tmp_path / "motivnet-edge.service"
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "service", "--config",
                          str(config), "--user", "cam", "--write", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text = unit.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    executable = exec_start.split("=", 1)[1].split()[0]
    assert Path(executable).is_file()  # this install's own, not /usr/local/bin
    assert exec_start.endswith(f"run --config {config}") and "User=cam" in text
    assert oct(unit.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
