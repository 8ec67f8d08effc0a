"""The shipped example configs (``examples/``) cannot rot: each loads with the daemon's own
config loader, there is one for every target profile, and ``reference.yaml`` lists every key
with its default."""

import dataclasses
import shutil
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from motivnet_edge.edge.config import Config, load_config
from motivnet_edge.targets.profiles import PROFILES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def _copy_with_footage(example: Path, folder: Path) -> Path:
    """The example in a folder of its own, with a short clip for any relative video source it
    names (as a user's folder would hold)."""
    path = folder / example.name
    shutil.copy(example, path)
    path.chmod(0o644)
    for cam in (yaml.safe_load(example.read_text()).get("cameras") or []):
        source = str(cam.get("source", ""))
        if source.endswith((".mp4", ".avi")) and not source.startswith("/"):
            out = cv2.VideoWriter(str(folder / source), cv2.VideoWriter_fourcc(*"mp4v"), 5,
                                  (64, 48))
            for _ in range(3):
                out.write(np.zeros((48, 64, 3), np.uint8))
            out.release()
    return path


def test_there_are_examples():
    assert len(FILES) >= len(PROFILES) + 1


@pytest.mark.parametrize("example", FILES, ids=[f.stem for f in FILES])
def test_every_example_loads_with_the_daemons_loader(example, tmp_path):
    cfg = load_config(_copy_with_footage(example, tmp_path), env={})
    assert cfg.cameras and cfg.model.target in {*PROFILES, "auto"}


@pytest.mark.parametrize("target", sorted(PROFILES))
def test_every_target_profile_has_an_example_for_it(target, tmp_path):
    path = EXAMPLES / f"{target}.yaml"
    assert path.is_file(), f"examples/{target}.yaml is missing"
    assert load_config(_copy_with_footage(path, tmp_path), env={}).model.target == target


def _fields(cls, data: dict, where: str = "") -> list[str]:
    """Every field of ``cls`` (recursively) missing from the mapping ``data``."""
    missing = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{where}{f.name}"
        if f.name not in data:
            missing.append(name)
            continue
        hint = hints[f.name]
        inner = typing.get_args(hint)
        target = next((a for a in (hint, *inner) if dataclasses.is_dataclass(a)), None)
        value = data[f.name]
        if target is not None and isinstance(value, dict):
            missing += _fields(target, value, name + ".")
        elif target is not None and isinstance(value, list) and value:
            missing += _fields(target, value[0], name + "[0].")
    return missing


def test_the_reference_lists_every_key_with_its_default(tmp_path):
    path = EXAMPLES / "reference.yaml"
    data = yaml.safe_load(path.read_text())
    missing = _fields(Config, data)
    # a nested section whose default is None (tls) is named, its keys are in the comment
    missing = [m for m in missing if not m.startswith("mqtt.tls.")]
    assert missing == [], f"reference.yaml lacks {missing}"
    loaded = load_config(_copy_with_footage(path, tmp_path), env={})
    assert Path(loaded.model.artifact).parts[-3:] == ("edge", "models", "emotion")  # shipped
    default = Config()
    default = dataclasses.replace(default, device=loaded.device, model=dataclasses.replace(
        default.model, artifact=loaded.model.artifact))
    assert loaded == default, "reference.yaml's values are not the defaults"


def test_the_key_check_finds_a_missing_key():
    data = yaml.safe_load((EXAMPLES / "reference.yaml").read_text())
    del data["mqtt"]["spool"]["max_messages"]
    del data["pipeline"]["smoothing"]
    assert _fields(Config, data) == ["pipeline.smoothing", "mqtt.spool.max_messages"]
