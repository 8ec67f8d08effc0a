"""Shared fixtures: paths to optional development files and small generated data."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
YUNET = ROOT.parent / "shared" / "models" / "face_detection_yunet.onnx"


@pytest.fixture
def yunet_path() -> Path:
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not present")
    return YUNET
