"""Container images of the device runtime: a bundle installed into a Debian root and made an
image by buildah, for amd64 and (under qemu-user) arm64; the daemon inside each, as the image's
non-root user, delivers results to the test's broker. Each image's size is printed."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest
import yaml

from motivnet_edge.edge.packaging import image, roots
from tests.bundles import footage, make_bundle
from tests.helpers import Subscriber

CASES = [pytest.param(target, arch, os_name, marks=pytest.mark.root(arch, "trixie"))
         for target, arch, os_name in (("cpu", "x86_64", "debian-13"),
                                       ("rpi", "aarch64", "rpios-trixie"))]


def run_inside(ctr: str, arch: str, cmd: list[str]) -> subprocess.CompletedProcess:
    """``cmd`` run in the container as its user: by ``buildah run`` on this CPU; for another
    CPU in the container's mounted root by chroot with /proc and without /sys, since under
    qemu-user XNNPACK's cpuinfo reads this host's /sys and crashes (as in the emulated
    installs; a real arm64 host has its own /sys)."""
    if arch == platform.machine():
        return subprocess.run([*image.BUILDAH, "run", "--isolation", "chroot", "--user",
                               "motivnet", ctr, "--", *cmd],
                              capture_output=True, text=True, timeout=900)
    root = Path(image.buildah("mount", ctr))
    try:
        with roots.proc_mounted(root):
            return subprocess.run(["chroot", "--userspec=motivnet:motivnet", str(root),
                                   "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                                   f"STATE_DIRECTORY={image.STATE}", "HOME=/tmp", *cmd],
                                  capture_output=True, text=True, timeout=900)
    finally:
        image.buildah("umount", ctr)


@pytest.mark.slow
@pytest.mark.emulated
@pytest.mark.parametrize("target, arch, os_name", CASES)
def test_the_image_builds_and_its_daemon_delivers_results(tmp_path, broker, project_wheel,
                                                           target, arch, os_name):
    why = image.missing() or (arch != platform.machine() and roots.missing(arch))
    if why:
        pytest.skip(f"no {arch} image here: {why}")
    bundle = make_bundle(tmp_path / "b.tar.gz", target, arch, project_wheel, "--wheels",
                         "--os", os_name)
    made = image.build_image(bundle, tmp_path / "image.tar")
    print(f"image {made['tag']}: {made['bytes'] / 2**20:.0f} MiB")
    pulled = image.buildah("pull", "--quiet", f"docker-archive:{made['image']}").splitlines()[-1]
    ctr = image.buildah("from", pulled)
    try:
        config = json.loads(image.buildah("inspect", "--type", "container", ctr))
        docker = config["Docker"]["config"]
        assert docker["User"] == "motivnet" and docker["Healthcheck"]["Test"][0] == "CMD"
        assert set(docker["Volumes"]) == {image.CONF, image.STATE}
        assert docker["Entrypoint"][1:] == ["run", "--config", f"{image.CONF}/config.yaml"]
        assert config["Docker"]["architecture"] == roots.ARCHES[arch][0]
        footage(tmp_path / "footage", frames=3)
        (tmp_path / "test.yaml").write_text(yaml.safe_dump({
            "device": f"image-{target}", "model": {"target": target},
            "cameras": [{"name": "cam0", "source": "/tmp/footage"}],
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": "motivnet"}}))
        for src, dest in ((tmp_path / "footage", "/tmp/footage"),
                          (tmp_path / "test.yaml", "/tmp/test.yaml")):
            image.buildah("copy", "--chown", "motivnet:motivnet", ctr, str(src), dest)
        sub = Subscriber(broker.port)
        daemon = [docker["Entrypoint"][0], "run", "--config", "/tmp/test.yaml"]
        run = run_inside(ctr, arch, daemon)
        assert run.returncode == 0, run.stderr[-3000:]
        faces = [json.loads(p) for p in sub.wait_for(f"image-{target}/cam0/faces", 3)]
        assert all(f["faces"] for f in faces)
        sub.close()
    finally:
        subprocess.run([*image.BUILDAH, "rm", ctr], capture_output=True, check=False)
        subprocess.run([*image.BUILDAH, "rmi", pulled], capture_output=True, check=False)
