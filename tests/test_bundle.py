"""``motivnet-edge bundle`` and ``verify``: what a bundle holds for each target, and every way a
damaged bundle is refused before anything is put into place (by ``verify`` and by the bundle's
own ``install.sh``). No wheels are downloaded here: the offline installs are in
test_bundle_install.py."""

import json
import shutil
import subprocess
import sys
import tarfile

import pytest

from motivnet_edge.edge.packaging.bundle import platform_tags
from tests.bundles import flip_byte, make_bundle, unpack

pytestmark = pytest.mark.slow


def verify(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "verify", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rpi_bundle(tmp_path_factory, project_wheel):
    out = tmp_path_factory.mktemp("rpi") / "rpi.tar.gz"
    return make_bundle(out, "rpi", "aarch64", project_wheel)


def test_the_rpi_bundle_holds_the_tflite_file_unit_config_installer_and_sums(rpi_bundle,
                                                                             tmp_path):
    folder = unpack(rpi_bundle, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["artifact"] == "student-int8.tflite" and manifest["engine"] == "litert"
    assert manifest["extra"] == "tflite" and manifest["platform"] == "aarch64"
    listed = {e["path"] for e in manifest["files"]}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert listed == on_disk - {"manifest.json"}
    for needed in ("install.sh", "config.yaml", "motivnet-edge.service", "README",
                   "SHA256SUMS", "model/student-int8.tflite", "model/manifest.json",
                   "model/MODEL.md", "firstboot/firstboot.sh",
                   "firstboot/motivnet-edge-firstboot.service"):
        assert needed in on_disk, needed
    assert not any(p.endswith(".onnx") for p in on_disk), "one artifact: the target's"
    assert [p for p in on_disk if p.startswith("wheels/")] == \
        [f"wheels/{n}" for n in sorted(p.name for p in (folder / "wheels").iterdir())]
    assert "target: rpi" in (folder / "config.yaml").read_text()
    assert "@PREFIX@/current/venv/bin/motivnet-edge run --config @CONF_DIR@/config.yaml" in \
        (folder / "motivnet-edge.service").read_text()
    res = verify(rpi_bundle)
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout and "student-int8.tflite" in res.stdout


def test_each_target_gets_its_profiles_file_and_jetson_names_the_wheel_pypi_lacks(
        tmp_path, project_wheel):
    expected = {"cpu": "student-int8.onnx", "intel-cpu": "student-int8.onnx",
                "jetson": "student-int8.onnx"}
    for target, artifact in expected.items():
        bundle = make_bundle(tmp_path / f"{target}.tar.gz", target, "aarch64", project_wheel)
        folder = unpack(bundle, tmp_path / target)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["artifact"] == artifact, target
    readme = (tmp_path / "jetson").glob("*/README")
    text = next(readme).read_text()
    assert "onnxruntime-gpu" in text and "local-wheels/" in text


def test_bundles_are_built_for_the_os_the_device_runs(tmp_path, project_wheel):
    def built(name, target, *args):
        folder = unpack(make_bundle(tmp_path / f"{name}.tar.gz", target, "aarch64",
                                    project_wheel, *args), tmp_path / name)
        info = json.loads((folder / "manifest.json").read_text())
        return folder, (info["os"], info["python"], info["glibc"])

    folder, rpi = built("rpi", "rpi")  # a Pi flashed today: Raspberry Pi OS 13
    assert rpi == ("rpios-trixie", "3.13", "2.41")
    assert "PYTHON_VERSION=3.13" in (folder / "bundle.env").read_text()
    assert "source: libcamera:0" in (folder / "config.yaml").read_text()
    assert "Raspberry Pi OS 13" in (folder / "README").read_text()
    assert built("bookworm", "rpi", "--os", "rpios-bookworm")[1] == \
        ("rpios-bookworm", "3.11", "2.36")
    folder, jetson = built("jetson", "jetson")
    assert jetson == ("jetpack6", "3.10", "2.35")
    assert "nvarguscamerasrc" in (folder / "config.yaml").read_text()
    assert built("over", "rpi", "--os", "ubuntu-24.04", "--python", "3.11")[1] == \
        ("ubuntu-24.04", "3.11", "2.39")
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "bundle", "--target",
                          "rpi", "--platform", "aarch64", "--os", "raspbian-9", "--out",
                          str(tmp_path / "x.tar.gz")], capture_output=True, text=True)
    assert res.returncode == 2 and "rpios-trixie" in res.stderr


def test_platform_tags_cover_every_glibc_from_2_17():
    tags = platform_tags("aarch64", "2.36")
    assert "manylinux_2_27_aarch64" in tags and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_36_aarch64" in tags and "manylinux_2_37_aarch64" not in tags


def test_a_truncated_or_flipped_bundle_is_refused_naming_it(rpi_bundle, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(rpi_bundle.read_bytes()[: rpi_bundle.stat().st_size // 2])
    res = verify(cut)
    assert res.returncode == 2 and "truncated or corrupt" in res.stderr and str(cut) in res.stderr
    flipped = tmp_path / "flipped.tar.gz"
    shutil.copy(rpi_bundle, flipped)
    flip_byte(flipped)
    res = verify(flipped)
    assert res.returncode == 2 and str(flipped) in res.stderr
    assert "Traceback" not in res.stderr


def test_a_changed_or_added_file_is_named(rpi_bundle, tmp_path):
    folder = unpack(rpi_bundle, tmp_path / "a")
    flip_byte(folder / "model" / "student-int8.tflite")
    res = verify(folder)
    assert res.returncode == 2 and "model/student-int8.tflite" in res.stderr
    folder = unpack(rpi_bundle, tmp_path / "b")
    (folder / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"x")
    res = verify(folder)
    assert res.returncode == 2 and "evil-1.0" in res.stderr
    # the same, repacked as a .tar.gz: refused before anything is unpacked
    repacked = tmp_path / "repacked.tar.gz"
    with tarfile.open(repacked, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    res = verify(repacked)
    assert res.returncode == 2 and "evil-1.0" in res.stderr


def test_install_sh_refuses_a_damaged_bundle_and_installs_nothing(rpi_bundle, tmp_path):
    folder = unpack(rpi_bundle, tmp_path / "bundle")
    flip_byte(folder / "model" / "student-int8.tflite")
    prefix = tmp_path / "opt"
    res = subprocess.run(["sh", str(folder / "install.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                              "MOTIVNET_PREFIX": str(prefix),
                              "MOTIVNET_CONF_DIR": str(tmp_path / "etc"),
                              "MOTIVNET_UNIT_DIR": str(tmp_path / "units")})
    assert res.returncode != 0
    assert "model/student-int8.tflite: FAILED" in res.stderr, res.stderr
    assert not prefix.exists() and not (tmp_path / "etc").exists()


def test_stage_into_image_puts_the_bundle_and_an_enabled_oneshot_unit(rpi_bundle, tmp_path):
    folder = unpack(rpi_bundle, tmp_path / "bundle")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    res = subprocess.run(["sh", str(folder / "firstboot" / "stage-into-image.sh"), str(root),
                          str(rpi_bundle)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    staged = root / "var/lib/motivnet-edge-firstboot"
    assert (staged / rpi_bundle.name).read_bytes() == rpi_bundle.read_bytes()
    assert (staged / "firstboot.sh").is_file()
    link = root / "etc/systemd/system/multi-user.target.wants/motivnet-edge-firstboot.service"
    assert link.is_symlink()
    unit = (root / "etc/systemd/system/motivnet-edge-firstboot.service").read_text()
    assert "Type=oneshot" in unit and "firstboot.sh" in unit
    res = subprocess.run(["sh", str(folder / "firstboot" / "stage-into-image.sh"),
                          str(tmp_path / "nothing"), str(rpi_bundle)], capture_output=True,
                         text=True)
    assert res.returncode != 0 and "not a root file system" in res.stderr


def test_model_only_checks_the_model_and_leaves_the_rest_to_sha256sum(rpi_bundle, tmp_path):
    folder = unpack(rpi_bundle, tmp_path / "a")
    flip_byte(next((folder / "wheels").glob("motivnet_edge-*.whl")))
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "verify",
                          "--model-only", str(folder)], capture_output=True, text=True)
    assert res.returncode == 0 and "the model's files match" in res.stdout, res.stderr
    assert verify(folder).returncode == 2  # the whole check still sees the wheel
    flip_byte(folder / "model" / "student-int8.tflite")
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "verify",
                          "--model-only", str(folder)], capture_output=True, text=True)
    assert res.returncode == 2 and "student-int8.tflite" in res.stderr
