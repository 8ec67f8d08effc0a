"""A stage run again in a finished run folder: the verdict that described the old files goes,
so the new files load, and validate lists them anew."""

import json
import shutil

import pytest

from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import artifact_name
from tests.helpers import SMALL_GATE, cli, output


@pytest.mark.slow
def test_quantizing_again_drops_the_stale_manifest_and_validate_lists_the_new_file(
        compressed, tmp_path):
    out, res = compressed
    assert res.returncode == 0, output(res)
    run = tmp_path / "run"
    shutil.copytree(out, run)
    name = artifact_name("student", "int8", "onnx")
    listed = {e["path"]: e for e in json.loads((run / "manifest.json").read_text())["files"]}
    # without fine-tuning and on fewer faces: a different INT8 file under the same name
    res = cli("quantize", "--out", run, "--formats", "onnx", "--qat-steps", "0",
              "--calibration", "20", "--gate", str(SMALL_GATE))
    assert res.returncode == 0, output(res)
    assert sha256_file(run / name) != listed[name]["sha256"]
    assert not (run / "manifest.json").exists() and not (run / "report.json").exists()
    assert "removed manifest.json, report.json" in res.stdout and "validate --out" in res.stdout
    load_engine(run / name)  # loads: no stale size or sha256 stands in its way
    res = cli("validate", "--out", run, "--gate", str(SMALL_GATE))
    assert res.returncode == 0, output(res)
    now = {e["path"]: e for e in json.loads((run / "manifest.json").read_text())["files"]}
    assert now[name]["sha256"] == sha256_file(run / name)
    assert now[name]["bytes"] == (run / name).stat().st_size
    load_engine(run / name)  # and loads against the new manifest, its sha256 checked
