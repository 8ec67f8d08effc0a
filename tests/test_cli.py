"""The motivnet-edge command: info, help on every subcommand, errors with non-zero exits."""

import subprocess
import sys

import pytest
import torch

from motivnet_edge.cli import COMMANDS
from motivnet_edge.compress.models.motivnet import build_motivnet


def cli(*args):
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command):
    res = cli(command, "--help")
    assert res.returncode == 0 and "usage" in res.stdout


def test_info_of_1b_prints_size_and_multiply_adds():
    res = cli("info", "--model", "motivnet-1b")
    assert res.returncode == 0, res.stderr
    assert "1,161,033,863" in res.stdout and "1x3x1024x768" in res.stdout
    assert "Happiness" in res.stdout and "random initialisation" in res.stdout


def test_info_reports_the_loaded_checkpoint(tmp_path):
    path = tmp_path / "MotivNet.pth"
    torch.save(build_motivnet("motivnet-tiny").state_dict(), path)
    res = cli("info", "--model", "motivnet-tiny", "--checkpoint", str(path))
    assert res.returncode == 0, res.stderr
    assert "motivnet checkpoint" in res.stdout and str(path) in res.stdout


def test_info_bad_checkpoint_exits_non_zero_naming_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    res = cli("info", "--checkpoint", str(path))
    assert res.returncode == 2
    assert str(path) in res.stderr and "Traceback" not in res.stderr


def test_unknown_model_is_rejected():
    res = cli("info", "--model", "motivnet-9b")
    assert res.returncode != 0 and "motivnet-9b" in res.stderr
