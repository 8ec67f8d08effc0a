"""Small models and files the tests make themselves."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import torch
from torch import nn

# the small compress run the command-line tests share: one epoch on synthetic faces
DISTIL_SMALL = ["--synthetic", "160", "--epochs", "1", "--min-steps", "0",
                "--student", "mobilenetv3_small_100", "--size", "48", "--quiet"]
SMALL = [*DISTIL_SMALL, "--calibration", "40"]
# a teacher with random weights names nearly one class, so the student's decisions on the
# 18 held-out crops are near ties and one flip is 5.6 %: the gate is lowered to 0.9 there
SMALL_GATE = 0.9


def cli(*args) -> subprocess.CompletedProcess:
    """``motivnet-edge ARGS`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def bench_module(name: str, *args, layer: str = "benchmarks") -> subprocess.CompletedProcess:
    """``python -m motivnet_edge.LAYER.NAME ARGS`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", f"motivnet_edge.{layer}.{name}",
                           *map(str, args)], capture_output=True, text=True, timeout=600)


def output(res) -> str:
    """What a failed command said: the report table is on stdout, errors on stderr."""
    return res.stdout[-2000:] + "\n" + res.stderr[-3000:]


def rknn_missing() -> str | None:
    """Why RKNN files cannot be built here (rknn-toolkit2's venv), or None."""
    from motivnet_edge.compress.int8.rknn_ops import missing_reason

    return missing_reason()


class TinyNet(nn.Module):
    """A few-layer CNN classifier: quick to export and convert in every format."""

    def __init__(self, classes: int = 7, channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FixedLogits(nn.Module):
    """Outputs ``values`` (plus 0 x input) whatever the image: a teacher whose class order
    the tests know."""

    def __init__(self, values) -> None:
        super().__init__()
        self.register_buffer("values", torch.tensor(values, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values.unsqueeze(0) + 0.0 * x.mean(dim=(1, 2, 3), keepdim=False)[:, None]


def write_faces(folder, n: int, seed: int = 0) -> list:
    from motivnet_edge.edge.data.synthetic import synth_faces

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, face in enumerate(synth_faces(n, seed=seed)):
        path = folder / f"face{i:03d}.png"
        cv2.imwrite(str(path), face.image)
        paths.append(path)
    return paths


def blank_image(path) -> None:
    cv2.imwrite(str(path), np.full((120, 120, 3), 128, np.uint8))


def onnx_artifact(folder, size: int = 32, seed: int = 0, region: str = "square"):
    """A real ONNX artifact with metadata, as compress writes it (a small untrained CNN);
    ``region="aligned"`` makes one that takes faces aligned on five landmarks."""
    from motivnet_edge.compress.artifacts import embed_metadata
    from motivnet_edge.compress.int8 import onnx_ops
    from motivnet_edge.targets.formats import artifact_name
    from motivnet_edge.targets.labels import AFFECTNET7
    from motivnet_edge.targets.preprocess import CropSpec

    torch.manual_seed(seed)
    spec = CropSpec(height=size, width=size, margin=0.15, region=region)
    path = folder / artifact_name("student", "fp32", "onnx")
    onnx_ops.export(TinyNet().eval(), spec, path, path.parent)
    embed_metadata(path, {"labels": list(AFFECTNET7), "crop": spec.to_dict(),
                          "precision": "fp32"})
    return path


def compress_with_teacher(root, model: nn.Module, example: np.ndarray, spec: dict,
                          *args: str):
    """``model`` exported as an ONNX teacher (dynamic batch) with ``spec`` beside it, and the
    demo-sized compress run on it into ``root / "out"``, half the faces held out; ``args``
    after. Returns (out folder, the finished process)."""
    import subprocess
    import sys

    import yaml

    teacher = root / "teacher.onnx"
    torch.onnx.export(model, (torch.from_numpy(example[:1]),), str(teacher),
                      input_names=["input"], dynamic_axes={"input": {0: "n"}}, dynamo=False)
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = root / "out"
    res = subprocess.run([sys.executable, "-m", "motivnet_edge", "compress", "--out", str(out),
                          "--teacher", str(teacher), "--teacher-spec", str(root / "spec.yaml"),
                          "--cache-dir", str(root / "cache"), "--val-fraction", "0.5",
                          *args, "--quiet"],
                         capture_output=True, text=True, timeout=1500)
    return out, res


def synthetic_video(path, frames: int, seed: int = 0, fps: float = 10.0):
    """An MJPG .avi of 640x480 frames holding 1-3 synthetic faces."""
    from motivnet_edge.edge.data.synthetic import synth_scene

    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    labels = [int(x) for x in rng.integers(0, 7, int(rng.integers(1, 4)))]
    frame, _ = synth_scene(rng, labels)
    for i in range(frames):
        shifted = np.roll(frame, i % 5, axis=1)  # a little motion
        writer.write(shifted)
    writer.release()
    return path


class Subscriber:
    """Collects every message under ``prefix/#`` at QoS 1 with a persistent session."""

    def __init__(self, port: int, prefix: str = "motivnet") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"sub-{port}-{prefix}", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def on(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, suffix: str, n: int = 1, timeout: float = 60.0) -> list[bytes]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.on(suffix)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{n} messages on *{suffix} not seen in {timeout}s: "
                             f"{len(self.on(suffix))}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
