"""rknn-toolkit2's own venv as ``make rknn-toolkit`` finds it: missing, or there but unable to
import the toolkit (a venv cached from another checkout), each said by name with exit status 1
so that ``--install`` knows to build it (again)."""

from __future__ import annotations

import subprocess
import sys

from motivnet_edge.compress.int8 import rknn_ops


def test_a_missing_toolkit_venv_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOTIVNET_RKNN_VENV", str(tmp_path / "none"))
    assert rknn_ops.main([]) == 1
    out = capsys.readouterr().out
    assert f"not installed in {tmp_path / 'none'}" in out and "make rknn-toolkit" in out


def test_a_toolkit_venv_that_cannot_import_it_is_named_broken(tmp_path, monkeypatch, capsys):
    venv = tmp_path / "stale"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setenv("MOTIVNET_RKNN_VENV", str(venv))
    assert rknn_ops.toolkit_python() == venv / "bin" / "python"  # there, so not "missing"
    assert rknn_ops.main([]) == 1
    out = capsys.readouterr().out
    assert f"rknn-toolkit2 in {venv} does not import" in out
    assert "No module named 'rknn'" in out, out


def test_the_worker_reaches_this_environments_torch_from_a_venv_without_it(tmp_path):
    """What every build request carries: the folder holding torch, appended after the venv's
    own packages; a bare venv finds torch through it and nothing else."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    site = rknn_ops.torch_site()
    res = subprocess.run([python, "-c", f"import sys; sys.path.append({site!r}); import torch; "
                          "print(torch.__file__)"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith(site), res.stderr
