"""Bundles installed offline as a device installs them, with their own install.sh, and the
daemon run from the install until its results arrive at a real broker: the ``cpu`` bundle for
x86_64 into a fresh folder on this machine, and the ``rpi`` bundle for aarch64, built for its
default OS (Raspberry Pi OS 13: Python 3.13) into an emulated arm64 Debian trixie root and with
``--os rpios-bookworm`` (Python 3.11) into a bookworm one, where the installed daemon reads a
GStreamer pipeline through the system's python3-gi, and the ``rockchip`` bundle of an RKNN
model into a bookworm root up to the NPU runtime library no wheel brings (qemu-user;
skipped with the reason where root, qemu-user-static, mmdebstrap or binfmt_misc is missing).
Installing again changes nothing; an upgrade keeps the previous version and ``--rollback``
returns to it; a flipped byte is refused."""

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from motivnet_edge.edge.packaging import roots as emulated
from motivnet_edge.edge.packaging.bundle import write_sums
from tests.bundles import flip_byte, footage, make_bundle, raw_video, snapshot, unpack
from tests.helpers import Subscriber, output, rknn_missing

pytestmark = pytest.mark.slow


def write_config(path, model, target, source, port):
    path.write_text(yaml.safe_dump({
        "device": "bundle-test", "model": {"artifact": str(model), "target": target},
        "cameras": [{"name": "cam0", "source": str(source)}],
        "mqtt": {"host": "127.0.0.1", "port": port, "prefix": "motivnet"}}))
    return path


def results(sub: Subscriber) -> list[dict]:
    faces = [json.loads(p) for p in sub.wait_for("/faces", 1, timeout=120)]
    assert all(f["faces"] and f["faces"][0]["label"] for f in faces)
    return faces


def same_faces_as_opencv(published: list[dict], clip: Path) -> None:
    """Each published frame's boxes are the ones YuNet in OpenCV finds on this host in the
    same raw frame (within 2 px)."""
    import numpy as np

    from motivnet_edge.edge.detect import FaceDetector

    frames = np.fromfile(clip, np.uint8).reshape(-1, 480, 640, 3)
    opencv = FaceDetector(engine="opencv")
    for msg in published:
        want = [f.box for f in opencv.detect(frames[msg["frame"] - 1])]
        got = [f["box"] for f in msg["faces"]]
        assert len(got) == len(want) and all(
            max(abs(a - b) for a, b in zip(g, w, strict=True)) <= 2
            for g, w in zip(got, want, strict=True)), (msg["frame"], got, want)


def install(folder, env, *args):
    return subprocess.run(["sh", str(folder / "install.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=900)


def test_cpu_bundle_installs_offline_on_x86_64_runs_upgrades_and_rolls_back(
        tmp_path, broker, project_wheel):
    if os.uname().machine != "x86_64":
        pytest.skip("the x86_64 bundle needs an x86_64 host")
    bundle = make_bundle(tmp_path / "cpu.tar.gz", "cpu", "x86_64", project_wheel, "--wheels")
    folder = unpack(bundle, tmp_path / "unpacked")
    assert "WHEELS=all" in (folder / "bundle.env").read_text()  # pip runs with --no-index
    prefix, conf, units = tmp_path / "opt", tmp_path / "etc", tmp_path / "units"
    env = {"PATH": os.environ["PATH"], "MOTIVNET_PREFIX": str(prefix),
           "MOTIVNET_CONF_DIR": str(conf), "MOTIVNET_UNIT_DIR": str(units),
           "MOTIVNET_USER": pwd.getpwuid(os.geteuid()).pw_name,
           "MOTIVNET_PYTHON": sys.executable, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": "/dev/null"}
    res = install(folder, env)
    assert res.returncode == 0, res.stderr
    first = os.readlink(prefix / "current")
    assert (prefix / first / ".complete").is_file()
    assert str(prefix / "current/model") in (conf / "config.yaml").read_text()
    assert (units / "multi-user.target.wants/motivnet-edge.service").is_symlink()
    unit = (units / "motivnet-edge.service").read_text()
    assert f"ExecStart={prefix}/current/venv/bin/motivnet-edge run --config {conf}/config.yaml" \
        in unit

    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "test.yaml", prefix / "current/model", "cpu",
                         footage(tmp_path / "footage"), broker.port)
    run = subprocess.run([str(prefix / "current/venv/bin/motivnet-edge"), "run", "--config",
                          str(config)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert len(results(sub)) >= 2
    sub.close()

    before = snapshot(prefix, conf, units)
    again = install(folder, env)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout
    assert snapshot(prefix, conf, units) == before

    kept_config = snapshot(conf)
    newer = make_bundle(tmp_path / "cpu2.tar.gz", "cpu", "x86_64", project_wheel, "--wheels",
                        "--glibc", "2.35")
    res = install(unpack(newer, tmp_path / "unpacked2"), env)
    assert res.returncode == 0, res.stderr
    second = os.readlink(prefix / "current")
    assert second != first and os.readlink(prefix / "previous") == first
    assert snapshot(conf) == kept_config, "an upgrade keeps the operator's config"
    res = install(folder, env, "--rollback")
    assert res.returncode == 0, res.stderr
    assert os.readlink(prefix / "current") == first
    assert os.readlink(prefix / "previous") == second

    _first_boot_installs_a_staged_bundle(folder, newer, env, tmp_path, prefix, second)
    _a_failed_install_leaves_the_running_version(newer, env, tmp_path, prefix, conf, units)


def _first_boot_installs_a_staged_bundle(folder: Path, newer: Path, env: dict, tmp_path: Path,
                                         prefix: Path, second: str) -> None:
    """An image built with the newer bundle staged: the first boot installs it, then the
    oneshot unit is disabled and the bundle removed."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    subprocess.run(["sh", str(folder / "firstboot/stage-into-image.sh"), str(rootfs),
                    str(newer)], check=True, capture_output=True)
    staged = rootfs / "var/lib/motivnet-edge-firstboot"
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    res = subprocess.run(["sh", str(staged / "firstboot.sh")], capture_output=True, text=True,
                         env={**env, "MOTIVNET_FIRSTBOOT_DIR": str(staged),
                              "MOTIVNET_UNIT_DIR": str(rootfs / "etc/systemd/system")},
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert os.readlink(prefix / "current") == second
    assert not (wants / "motivnet-edge-firstboot.service").exists()
    assert (wants / "motivnet-edge.service").is_symlink()
    assert not list(staged.glob("*.tar.gz"))


def _a_failed_install_leaves_the_running_version(newer: Path, env: dict, tmp_path: Path,
                                                 prefix: Path, conf: Path, units: Path) -> None:
    """A whole, well-signed bundle whose install fails half-way (a wheel it needs is not in
    it): the half-built version is removed, the running one stays current."""
    broken = unpack(newer, tmp_path / "broken")
    (numpy_wheel,) = (broken / "wheels").glob("numpy-*.whl")
    numpy_wheel.unlink()
    (broken / "README").write_text("a different bundle\n")  # another digest, another folder
    info = json.loads((broken / "manifest.json").read_text())
    write_sums(broken, {k: v for k, v in info.items() if k != "files"})
    before = snapshot(prefix, conf, units)
    res = install(broken, env)
    assert res.returncode != 0 and "pip could not install" in res.stderr, res.stderr
    assert "half-built" in res.stderr
    assert snapshot(prefix, conf, units) == before
    assert not (prefix / ".lock").exists()


def install_and_read_gstreamer(root, bundle, broker) -> str:
    """The bundle installed into the emulated root by its own install.sh; the installed
    venv sees the system's GStreamer bindings (its OpenCV has none), and the daemon reads a
    GStreamer pipeline over a file of frames until results arrive at the broker. Returns the
    bundle folder's path inside the root."""
    folder = unpack(bundle, root / "tmp" / "bundle")
    inside = "/" + folder.relative_to(root).as_posix()
    res = subprocess.run(emulated.chroot_cmd(root, "sh", f"{inside}/install.sh"),
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "motivnet:" in (root / "etc/passwd").read_text()
    assert (root / "etc/motivnet-edge/config.yaml").is_file()
    assert (root / "etc/systemd/system/multi-user.target.wants/motivnet-edge.service").is_symlink()
    motivnet = "/opt/motivnet-edge/current/venv/bin/motivnet-edge"
    listed = subprocess.run(emulated.chroot_cmd(root, motivnet, "cameras"),
                            capture_output=True, text=True, timeout=600)
    assert listed.returncode == 0, listed.stderr
    assert "GStreamer pipelines: GStreamer 1." in listed.stdout, listed.stdout
    assert "through PyGObject" in listed.stdout
    raw_video(footage(root / "tmp" / "footage", frames=3), root / "tmp" / "clip.bgr")
    write_config(root / "tmp" / "test.yaml", "/opt/motivnet-edge/current/model", "rpi",
                 "filesrc location=/tmp/clip.bgr ! rawvideoparse format=bgr width=640 "
                 "height=480 framerate=5/1 ! videoconvert ! appsink", broker.port)
    sub = Subscriber(broker.port)
    run = subprocess.run(emulated.chroot_cmd(root, motivnet, "run", "--config",
                                             "/tmp/test.yaml"),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "litert" in run.stderr  # the rpi profile's engine ran the TFLite file
    assert "face detector: yunet in litert" in run.stderr  # and the shipped TFLite YuNet
    assert "gstreamer (GStreamer 1." in run.stderr and "PyGObject" in run.stderr
    published = results(sub)
    assert len(published) >= 2
    same_faces_as_opencv(published, root / "tmp" / "clip.bgr")
    sub.close()
    return inside


def emulated_root(tmp_path, suite: str):
    why = emulated.missing("aarch64")
    if why:
        pytest.skip(f"no emulated arm64 root: {why}")
    return emulated.copy_root(emulated.cached_root("aarch64", suite), tmp_path / "root")


@pytest.mark.emulated
@pytest.mark.root("aarch64", "bookworm")
def test_a_bookworm_bundle_installs_and_reads_gstreamer_on_emulated_raspberry_pi_os_12(
        tmp_path, broker, project_wheel):
    bundle = make_bundle(tmp_path / "rpi.tar.gz", "rpi", "aarch64", project_wheel, "--wheels",
                         "--os", "rpios-bookworm")
    root = emulated_root(tmp_path, "bookworm")
    try:
        with emulated.proc_mounted(root):
            install_and_read_gstreamer(root, bundle, broker)
            assert "PYTHON_VERSION=3.11" in (root / "opt/motivnet-edge/current/bundle.env"
                                             ).read_text()
    finally:
        emulated.remove_root(root)


@pytest.mark.emulated
@pytest.mark.root("aarch64", "trixie")
def test_rpi_bundle_installs_and_runs_on_emulated_arm64(tmp_path, broker, project_wheel):
    bundle = make_bundle(tmp_path / "rpi.tar.gz", "rpi", "aarch64", project_wheel, "--wheels")
    root = emulated_root(tmp_path, "trixie")
    try:
        with emulated.proc_mounted(root):
            inside = install_and_read_gstreamer(root, bundle, broker)
            folder = root / inside.lstrip("/")
            assert "PYTHON_VERSION=3.13" in (folder / "bundle.env").read_text()

            # the benchmark's rows run again in the emulated device's own install
            out = tmp_path / "bench"
            res = subprocess.run(
                [sys.executable, "-m", "motivnet_edge.cli", "bench", "--limit", "8",
                 "--rounds", "1", "--per-round", "2", "--no-rss", "--out", str(out),
                 "--device-python", "/opt/motivnet-edge/current/venv/bin/python",
                 "--device-root", str(root)], capture_output=True, text=True, timeout=900)
            assert res.returncode == 0, res.stderr
            device = json.loads((out / "results.json").read_text())["device"]
            assert device["emulated"] and device["machine"] == "aarch64", device
            assert not device["torch_loaded"]
            (tfl,) = [r for r in device["rows"] if r["file"] == "student-int8.tflite"]
            assert tfl["status"] == "ok" and tfl["agreement_with_host"] >= 0.75, tfl
            assert "EMULATED: not a device figure" in (out / "results.md").read_text()

            watched = [root / "opt/motivnet-edge", root / "etc/motivnet-edge",
                       root / "etc/systemd/system"]
            before = snapshot(*watched)
            again = subprocess.run(emulated.chroot_cmd(root, "sh", f"{inside}/install.sh"),
                                   capture_output=True, text=True, timeout=600)
            assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout
            assert snapshot(*watched) == before

            bad = root / "tmp" / "bad"
            shutil.copytree(folder, bad)
            flip_byte(bad / "model" / "student-int8.tflite")
            res = subprocess.run(emulated.chroot_cmd(root, "sh", "/tmp/bad/install.sh"),
                                 capture_output=True, text=True, timeout=600)
            assert res.returncode != 0 and "student-int8.tflite: FAILED" in res.stderr
            assert snapshot(*watched) == before
    finally:
        emulated.remove_root(root)
    flipped = tmp_path / "flipped.tar.gz"
    shutil.copy(bundle, flipped)
    flip_byte(flipped)
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "verify",
                          str(flipped)], capture_output=True, text=True)
    assert res.returncode == 2 and str(flipped) in res.stderr


@pytest.mark.emulated
@pytest.mark.root("aarch64", "bookworm")
@pytest.mark.skipif(rknn_missing() is not None, reason=str(rknn_missing()))
def test_a_rockchip_bundle_installs_on_emulated_debian_12_up_to_the_npu_runtime_library(
        tmp_path, broker, project_wheel, rknn_run):
    """The rockchip bundle of an RKNN model (Debian 12's Python 3.11, rknn-toolkit-lite2
    among its wheels) is accepted by ``verify`` and installs offline into an emulated arm64
    Debian 12 root. What no PyPI wheel brings is named at each step: librknnrt.so, the NPU
    runtime of the board's image, by the install's note, ``targets`` and the daemon, which
    refuses to start without it (an error, not a traceback)."""
    run, res = rknn_run
    assert res.returncode == 0, output(res)
    bundle = make_bundle(tmp_path / "rockchip.tar.gz", "rockchip", "aarch64", project_wheel,
                         "--wheels", "--artifacts", str(run))
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "verify", str(bundle)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    root = emulated_root(tmp_path, "bookworm")
    try:
        with emulated.proc_mounted(root):
            folder = unpack(bundle, root / "tmp" / "bundle")
            assert [p.name for p in (folder / "model").glob("*.rknn")] == ["student-int8.rknn"]
            inside = "/" + folder.relative_to(root).as_posix()
            res = subprocess.run(emulated.chroot_cmd(root, "sh", f"{inside}/install.sh"),
                                 capture_output=True, text=True, timeout=1200)
            assert res.returncode == 0, res.stdout + res.stderr
            assert "librknnrt.so" in res.stdout, res.stdout  # the install's note
            current = "/opt/motivnet-edge/current"
            lite = subprocess.run(emulated.chroot_cmd(
                root, f"{current}/venv/bin/python", "-c",
                "import importlib.metadata as m; print(m.version('rknn-toolkit-lite2'))"),
                capture_output=True, text=True, timeout=300)
            assert lite.stdout.strip() == "2.5.0", lite.stderr
            listed = subprocess.run(emulated.chroot_cmd(
                root, f"{current}/venv/bin/motivnet-edge", "targets", "--artifacts",
                f"{current}/model"), capture_output=True, text=True, timeout=600)
            line = next(x for x in listed.stdout.splitlines() if x.startswith("rockchip"))
            assert "librknnrt.so" in line, listed.stdout + listed.stderr
            footage(root / "tmp" / "footage", frames=2)
            write_config(root / "tmp" / "test.yaml", f"{current}/model", "rockchip",
                         "/tmp/footage", broker.port)
            daemon = subprocess.run(emulated.chroot_cmd(
                root, f"{current}/venv/bin/motivnet-edge", "run", "--config",
                "/tmp/test.yaml"), capture_output=True, text=True, timeout=600)
            assert daemon.returncode != 0 and "librknnrt.so" in daemon.stderr, daemon.stderr
            assert "Traceback" not in daemon.stderr
    finally:
        emulated.remove_root(root)
