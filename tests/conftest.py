"""Shared fixtures: paths to optional development files and small generated data."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from motivnet_edge.edge.yunet import SHIPPED_YUNET

ROOT = Path(__file__).resolve().parents[1]
YUNET = SHIPPED_YUNET  # shipped in the package: no test needs ../shared


@pytest.fixture
def yunet_path() -> Path:
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not present")
    return YUNET


def mosquitto_path() -> str | None:
    """Debian installs mosquitto in /usr/sbin, which is not on every user's PATH."""
    import shutil

    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Broker:
    """A real MQTT broker on a free loopback port: mosquitto when on the PATH (it can be
    stopped and restarted on the same port, keeping sessions), else amqtt in a thread."""

    def __init__(self, tmp: Path, listener_conf: str = "", anonymous: bool = True) -> None:
        """``listener_conf``: mosquitto lines for the listener (TLS files); with
        ``anonymous=False`` a password file must be among them."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp = tmp
        self.proc = None
        self.exe = mosquitto_path()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{listener_conf}"
                             f"allow_anonymous {str(anonymous).lower()}\n"
                             f"persistence true\npersistence_location {tmp}/\n"
                             f"autosave_interval 1\n"
                             # as root, mosquitto drops to its own user, which cannot read
                             # pytest's private temporary folders (keys, persistence)
                             + ("user root\n" if os.geteuid() == 0 else ""))
        self._amqtt = None

    def start(self) -> None:
        import subprocess
        import time

        if self.exe:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self._amqtt = _AmqttThread(self.port)
            self._amqtt.start()
        import socket

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("broker did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt = None

    @property
    def restartable(self) -> bool:
        return self.exe is not None


class _AmqttThread:
    def __init__(self, port: int) -> None:
        import threading

        self.port = port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop = None

    def _run(self) -> None:
        import asyncio

        from amqtt.broker import Broker as AB

        self.loop = asyncio.new_event_loop()
        broker = AB({"listeners": {"default": {"type": "tcp",
                                               "bind": f"127.0.0.1:{self.port}"}}},
                    loop=self.loop)
        self.loop.run_until_complete(broker.start())
        self.broker = broker
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        import asyncio

        fut = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
        fut.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    """This project's wheel, built once per session from the source tree (bundles carry it)."""
    from motivnet_edge.edge.packaging.bundle import build_project_wheel

    return build_project_wheel(tmp_path_factory.mktemp("wheel"), None)


@pytest.fixture(scope="session")
def teacher_file(tmp_path_factory):
    """A tiny MotivNet checkpoint with random weights."""
    import torch

    from motivnet_edge.compress.models.motivnet import build_motivnet

    path = tmp_path_factory.mktemp("teacher") / "MotivNet-tiny.pth"
    torch.manual_seed(3)
    torch.save(build_motivnet("motivnet-tiny").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def compressed(tmp_path_factory, teacher_file):
    """The small compress run (tests.helpers.SMALL) of the tiny teacher: its folder and the
    finished command."""
    from tests.helpers import SMALL, SMALL_GATE, cli

    out = tmp_path_factory.mktemp("run") / "out"
    cache = tmp_path_factory.mktemp("cache")
    res = cli("compress", "--out", out, "--teacher", teacher_file, "--teacher-model",
              "motivnet-tiny", "--cache-dir", cache, *SMALL, "--gate", str(SMALL_GATE))
    return out, res


@pytest.fixture(scope="session")
def rknn_run(compressed, tmp_path_factory):
    """The small run's student quantised to RKNN for an RK3566 (and validated) in a copy of
    its folder: the folder and the quantize command."""
    import shutil

    from tests.helpers import SMALL_GATE, cli, output

    out, res = compressed
    assert res.returncode == 0, output(res)
    copy = tmp_path_factory.mktemp("rknn") / "run"
    shutil.copytree(out, copy)
    res = cli("quantize", "--out", copy, "--formats", "rknn", "--rknn-platform", "rk3566",
              "--calibration", "40", "--gate", str(SMALL_GATE))
    if res.returncode == 0:  # the manifest and report name the RKNN file too
        cli("validate", "--out", copy, "--gate", str(SMALL_GATE))
    return copy, res


ROOT_BUILDER = pytest.StashKey[threading.Thread]()


def root_inputs(item: pytest.Item) -> tuple | None:
    """The (arch, suite, packages) of the cached Debian root a test's ``root`` mark names."""
    mark = item.get_closest_marker("root")
    if mark is None:
        return None
    from motivnet_edge.edge.packaging import roots

    arch, suite, *packages = mark.args
    return arch, suite, tuple(packages[0]) if packages else roots.PACKAGES


def build_roots(wanted: list[tuple]) -> None:
    """Each root built (or found cached) in turn; a failure, or a machine where no root can be
    had, is left for its test to report."""
    from motivnet_edge.edge.packaging import roots
    from motivnet_edge.targets.errors import MotivnetError

    for arch, suite, packages in wanted:
        try:
            roots.cached_root(arch, suite, packages)
        except (MotivnetError, OSError, TimeoutError):
            continue


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    """Tests on a cached Debian root run last, and the roots they need are built from the
    session's start in a thread beside the other tests (mmdebstrap waits on downloads and runs
    the packages' scripts under qemu on one core): by the time those tests run, their roots are
    ready or nearly so (a test waits on the build's lock rather than building twice)."""
    items.sort(key=lambda item: root_inputs(item) is not None)
    wanted = list(dict.fromkeys(filter(None, map(root_inputs, items))))
    if wanted and not config.option.collectonly:
        thread = threading.Thread(target=build_roots, args=(wanted,), daemon=True,
                                  name="debian-roots")
        thread.start()
        config.stash[ROOT_BUILDER] = thread


def pytest_sessionfinish(session):
    """A root build still under way (its tests failed early or were interrupted) is waited
    for, so that no half-built root is left with mounts inside it."""
    thread = session.config.stash.get(ROOT_BUILDER, None)
    if thread is not None and thread.is_alive():
        print("\nwaiting for the Debian root build started for this session's tests",
              file=sys.stderr)
        thread.join()
