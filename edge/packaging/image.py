"""Container images of the device runtime: ``motivnet-edge image --bundle B --out IMAGE.tar``.

The image is the bundle installed, offline, by its own ``install.sh`` into a Debian root of the
bundle's CPU and Python (trixie for Python 3.13, bookworm for 3.11; built by mmdebstrap from
Debian's packages, :mod:`.roots`, since no registry of base images is reachable), then made an
image by ``buildah`` (vfs storage, chroot isolation: what works as root on these machines):

- it runs as the non-root ``motivnet`` user the install created; the daemon is the entrypoint
  (``run --config /etc/motivnet-edge/config.yaml``), PID 1: SIGTERM flushes the spool and
  publishes ``offline``, SIGHUP reloads the config;
- ``/etc/motivnet-edge`` (the config) and ``/var/lib/motivnet-edge`` (the state: the disk spool,
  the paused cameras) are volumes;
- HEALTHCHECK asks ``http://127.0.0.1:9100/healthz``: the image's own config serves it there,
  and a config of yours needs ``health: {port: 9100}`` for it.

It is written as a ``docker-archive`` (what ``docker save`` writes), which ``docker load`` and
``podman load`` both take: the OCI image format has no HEALTHCHECK.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from motivnet_edge.edge.packaging import roots
from motivnet_edge.edge.packaging.verify import verify
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)
SUITES = {"3.13": "trixie", "3.11": "bookworm"}  # the bundle's Python -> Debian's release
PREFIX, CONF, STATE = "/opt/motivnet-edge", "/etc/motivnet-edge", "/var/lib/motivnet-edge"
HEALTH_PORT = 9100
BUILDAH = ["buildah", "--storage-driver", "vfs"]


def buildah(*args: str, timeout: float = 1800) -> str:
    """A buildah command's standard output; a MotivnetError with its last lines on failure."""
    done = subprocess.run([*BUILDAH, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise MotivnetError(f"buildah {args[0]} failed (exit {done.returncode}):\n{tail}")
    return done.stdout.strip()


def missing() -> str | None:
    """Why an image cannot be built here, or None."""
    if not shutil.which("buildah"):
        return "no buildah: apt-get install buildah"
    return roots.root_missing("x86_64")


def install_root(bundle: Path, info: dict, work: Path) -> Path:
    """A Debian root of the bundle's CPU and Python with the bundle installed by its own
    install.sh (offline), the state folder made for the service user, caches dropped."""
    suite = SUITES.get(str(info.get("python")))
    if suite is None:
        raise MotivnetError(f"bundle {bundle} is for Python {info.get('python')} ({info.get('os')})"
                            f": images are built on Debian, for bundles of Python "
                            f"{' or '.join(SUITES)} (--os debian-13, rpios-trixie, debian-12, "
                            f"rpios-bookworm)")
    root = roots.copy_root(roots.cached_root(info["platform"], suite), work / "root")
    with tarfile.open(bundle) as tar:
        tar.extractall(root / "tmp" / "bundle", filter="data")
    (folder,) = (root / "tmp" / "bundle").iterdir()
    inside = "/" + folder.relative_to(root).as_posix()
    with roots.proc_mounted(root):
        for cmd, what in ((("sh", f"{inside}/install.sh"), "the bundle's install.sh"),
                          (("install", "-d", "-o", "motivnet", "-g", "motivnet", STATE),
                           "the state folder")):
            done = subprocess.run(roots.chroot_cmd(root, *cmd), capture_output=True, text=True,
                                  timeout=1800)
            if done.returncode != 0:
                raise MotivnetError(f"{what} failed in the image's root (exit "
                                    f"{done.returncode}): {done.stderr.strip()[-600:]}")
    shutil.rmtree(root / "tmp" / "bundle")
    for cache in ("var/lib/apt/lists", "var/cache/apt", "root/.cache"):
        shutil.rmtree(root / cache, ignore_errors=True)
    with open(root / CONF.lstrip("/") / "config.yaml", "a") as f:  # the image's healthcheck
        f.write(f"\n# the container image's HEALTHCHECK asks this port\n"
                f"health: {{port: {HEALTH_PORT}}}\n")
    return root


def build_image(bundle: Path, out: Path) -> dict:
    """The image of ``bundle`` written to ``out`` (a docker-archive); its tag and size."""
    info, _ = verify(bundle)
    arch = roots.ARCHES[info["platform"]][0]
    tag = f"localhost/motivnet-edge:{info['version']}-{info['target']}-{arch}"
    with tempfile.TemporaryDirectory(prefix="motivnet-image-") as tmp:
        work = Path(tmp)
        root = install_root(bundle, info, work)
        rootfs = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--exclude=./proc/*", "-cf", str(rootfs), "."],
                       check=True, timeout=1800)
        roots.remove_root(root)
        exe = f"{PREFIX}/current/venv/bin/motivnet-edge"
        python = f"{PREFIX}/current/venv/bin/python"
        probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:"
                 f"{HEALTH_PORT}/healthz', timeout=5)")
        ctr = buildah("from", "--arch", arch, "scratch")
        try:
            buildah("add", ctr, str(rootfs), "/")
            buildah("config", "--arch", arch, "--os", "linux", "--user", "motivnet",
                    "--workingdir", STATE, "--env", f"STATE_DIRECTORY={STATE}",
                    "--volume", CONF, "--volume", STATE, "--stop-signal", "SIGTERM",
                    "--entrypoint", json.dumps([exe, "run", "--config", f"{CONF}/config.yaml"]),
                    "--cmd", "[]", "--healthcheck", f"CMD {python} -c \"{probe}\"",
                    "--healthcheck-interval", "30s", "--healthcheck-timeout", "10s",
                    "--healthcheck-start-period", "60s", "--healthcheck-retries", "3",
                    "--label", f"org.opencontainers.image.version={info['version']}",
                    "--label", f"org.opencontainers.image.title=motivnet-edge {info['target']}",
                    ctr)
            buildah("commit", "--format", "docker", "--rm", ctr, tag)
        except MotivnetError:
            subprocess.run([*BUILDAH, "rm", ctr], capture_output=True, check=False)
            raise
        try:
            partial = out.with_name(out.name + ".partial")
            partial.unlink(missing_ok=True)
            buildah("push", tag, f"docker-archive:{partial}:{tag}")
            partial.replace(out)
        finally:
            subprocess.run([*BUILDAH, "rmi", tag], capture_output=True, check=False)
    return {"image": str(out), "tag": tag, "bytes": out.stat().st_size, "arch": arch}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge image``."""
    p.add_argument("--bundle", type=Path, required=True, help="a bundle made by `motivnet-edge "
                   "bundle --wheels` for a Debian Python (its CPU is the image's)")
    p.add_argument("--out", type=Path, required=True, help="the image archive to write "
                   "(docker load -i / podman load -i take it)")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge image``: the bundle installed into a Debian root and made an image."""
    why = missing()
    if why:
        raise MotivnetError(f"cannot build an image here: {why}")
    made = build_image(args.bundle, args.out)
    print(f"wrote {made['image']}: {made['tag']}, {made['bytes'] / 2**20:.0f} MiB "
          f"({made['arch']}); docker load -i {made['image']}")
    return 0
