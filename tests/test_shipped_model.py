"""The emotion model shipped in the package: its files match their manifest and card, are full
INT8 read back from the files, open in every engine installed, carry the aligned-112 crop and
the label order; every profile finds a file among them, and it is the default of the daemon,
``classify`` and ``bench``."""

import importlib.util
import json
import re

import numpy as np
import pytest

from motivnet_edge.compress.artifacts import inspect_precision
from motivnet_edge.edge.config import from_dict
from motivnet_edge.edge.shipped import CARD, MODEL_DIR, default_model
from motivnet_edge.targets.engine import ENGINES, engines_for, load_engine
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import format_of, is_artifact
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.manifest import MANIFEST
from motivnet_edge.targets.metadata import check_manifest, read_metadata
from motivnet_edge.targets.profiles import PROFILES, folder_choices

ARTIFACTS = sorted(p for p in MODEL_DIR.iterdir() if is_artifact(p)) if MODEL_DIR.is_dir() \
    else []


def manifest() -> dict:
    return json.loads((default_model() / MANIFEST).read_text())


def test_the_shipped_files_are_the_ones_the_issue_names_and_match_their_manifest():
    names = {p.name for p in ARTIFACTS}
    assert names == {"student-int8.onnx", "student-int8.tflite"}
    entries = {e["path"]: e for e in manifest()["files"]}
    assert set(entries) == names, "the manifest lists exactly the shipped artifacts"
    for path in ARTIFACTS:
        assert entries[path.name]["sha256"] == sha256_file(path)
        assert entries[path.name]["bytes"] == path.stat().st_size
        assert check_manifest(path) == sha256_file(path)
        assert not entries[path.name]["role"].startswith("rejected")


def test_the_card_states_each_files_sha256_and_the_figures():
    card = CARD.read_text()
    for path in ARTIFACTS:
        assert sha256_file(path) in card, f"{path.name}'s sha256 is not in MODEL.md"
    for needed in ("faces-dev", "macro recall", "Apache-2.0", "motivnet-edge distil",
                   "Known limits", "Contempt", "How it was chosen", "select half"):
        assert needed.lower() in card.lower(), needed
    assert re.search(r"commit [0-9a-f]{7,40}", card), "the commit that made it"
    opening = card.split("\n\n")[1]
    for path in ARTIFACTS:
        student = read_metadata(path)["student"]["name"]
        assert f"An {student} student" in opening, f"the card does not name {path.name}'s student"


@pytest.mark.parametrize("path", ARTIFACTS, ids=lambda p: p.name)
def test_shipped_files_are_full_int8_with_aligned_112_metadata(path):
    facts = inspect_precision(path)
    assert facts["precision"] == "int8", facts
    meta = read_metadata(path)
    assert meta["precision"] == "int8"
    assert list(meta["labels"]) == list(AFFECTNET7)
    crop = meta["crop"]
    assert (crop["region"], crop["height"], crop["width"]) == ("aligned", 112, 112)
    assert len(crop["template"]) == 5


@pytest.mark.parametrize("path", ARTIFACTS, ids=lambda p: p.name)
def test_shipped_files_open_and_run_in_every_engine_installed(path):
    ran = 0
    rng = np.random.default_rng(0)
    for engine in engines_for(format_of(path).name):
        if not any(importlib.util.find_spec(m) for m in ENGINES[engine].runtimes):
            continue
        with load_engine(path, engine) as loaded:
            batch = rng.uniform(-1, 1, (2, *loaded.input.shape[1:])).astype(loaded.input.dtype)
            out = loaded.run(batch)
        assert out.shape == (2, 7) and np.isfinite(out).all()
        ran += 1
    assert ran >= 1


def test_every_profile_picks_among_the_shipped_files():
    for name, profile in PROFILES.items():
        kept, reasons = folder_choices(profile, default_model())
        assert kept, f"{name}: {reasons}"
        assert all((MODEL_DIR / c.artifact).is_file() for c in kept)


def test_a_config_without_an_artifact_runs_the_shipped_model():
    cfg = from_dict({"cameras": [{"name": "door", "source": 0}]}, env={})
    assert cfg.model.artifact == str(MODEL_DIR)


def test_targets_says_which_shipped_file_each_profile_runs_here():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "motivnet_edge", "targets", "--json",
                          "--artifacts", str(MODEL_DIR)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    rows = {r["target"]: r for r in json.loads(res.stdout)["targets"]}
    assert rows["cpu"]["runs_here"] and rows["cpu"]["artifact"] == "student-int8.onnx"
    assert rows["intel-cpu"]["artifact"] == "student-int8.onnx"  # OpenVINO on the ONNX file
    assert rows["rpi"]["artifact"] == "student-int8.tflite"


def test_the_cards_selection_table_sets_the_teachers_own_rows_beside_the_files():
    from motivnet_edge.benchmarks.model_card import selection_section

    def row(select, untouched):
        return {f"{h}_{k}": v for h, a in (("select", select), ("untouched", untouched))
                for k, v in (("agreement", a), ("kl", 0.1), ("rare_agreement", a / 2))}

    selection = {"faces": 10, "groups": {"select": 6, "untouched": 4},
                 "rows": {"out/student-int8.onnx": row(0.9, 0.8)},
                 "teacher_rows": {"teacher, mirror image": row(0.7, 0.6),
                                  "teacher, on labelled faces": {"labelled_agreement": 0.5}}}
    text = selection_section(selection)
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert lines[2] == "| `student-int8.onnx` | 90.0 | 0.100 | 45.0 | 80.0 | 0.100 | 40.0 |"
    assert lines[3] == "| *teacher, mirror image* | 70.0 | 0.100 | 35.0 | 60.0 | 0.100 | 30.0 |"
    assert len(lines) == 4 and "(6 of 10)" in text and "its own answers" in text
    del selection["teacher_rows"]
    assert "its own answers" not in selection_section(selection)
