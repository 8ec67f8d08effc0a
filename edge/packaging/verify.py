"""``motivnet-edge verify BUNDLE``: check a bundle before anything of it is put into place.

A ``.tar.gz`` is read as a stream, never unpacked into place: every member must be a plain file
or folder inside the bundle's one folder, every file must be listed in ``manifest.json`` with
its sha256 and size and match it, and nothing listed may be missing. The model's files are
copied into a temporary folder, where their metadata is read and checked against the model's
own manifest. An unpacked bundle folder is checked the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from motivnet_edge.edge.packaging.bundle_files import BUNDLE_MANIFEST, LOCAL_WHEELS, file_list
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.manifest import Manifest
from motivnet_edge.targets.metadata import check_manifest, read_metadata


def _hash_stream(f, sink=None) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    while block := f.read(1 << 20):
        h.update(block)
        n += len(block)
        if sink is not None:
            sink.write(block)
    return h.hexdigest(), n


def _member_path(bundle: Path, member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise MotivnetError(f"bundle {bundle}: member {member.name!r} points outside the bundle")
    if not (member.isfile() or member.isdir()):
        raise MotivnetError(f"bundle {bundle}: member {member.name!r} is a link or a device, "
                            f"which a bundle never holds")
    return path


def read_tar(bundle: Path, model_dir: Path) -> tuple[str, dict[str, tuple[str, int]], dict]:
    """(the bundle's folder name, {path: (sha256, bytes)} of every file, the manifest); the
    files under ``model/`` are written to ``model_dir``."""
    files: dict[str, tuple[str, int]] = {}
    manifest_bytes = b""
    top = None
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            for member in tar:
                path = _member_path(bundle, member)
                top = top or path.parts[0]
                if path.parts[0] != top:
                    raise MotivnetError(f"bundle {bundle}: {member.name!r} is outside its "
                                        f"folder {top}/")
                if not member.isfile():
                    continue
                rel = PurePosixPath(*path.parts[1:]).as_posix()
                f = tar.extractfile(member)
                if rel == BUNDLE_MANIFEST:
                    manifest_bytes = f.read()
                    continue
                if rel.startswith("model/") and "/" not in rel[len("model/"):]:
                    with open(model_dir / PurePosixPath(rel).name, "wb") as sink:
                        files[rel] = _hash_stream(f, sink)
                else:
                    files[rel] = _hash_stream(f)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise MotivnetError(f"bundle {bundle} is truncated or corrupt: it cannot be read as a "
                            f".tar.gz ({type(exc).__name__}: {exc}); copy it again") from exc
    if top is None:
        raise MotivnetError(f"bundle {bundle} is empty")
    return top, files, _parse_manifest(bundle, manifest_bytes)


def read_folder(folder: Path) -> tuple[str, dict[str, tuple[str, int]], dict]:
    """As :func:`read_tar`, for an unpacked bundle (``local-wheels/``, where a user puts a
    vendor's wheel the registry lacks, is not the bundle's)."""
    files = {e["path"]: (e["sha256"], e["bytes"])
             for e in file_list(folder, skip={BUNDLE_MANIFEST})
             if not e["path"].startswith(LOCAL_WHEELS + "/")}
    manifest = folder / BUNDLE_MANIFEST
    return folder.name, files, _parse_manifest(folder, manifest.read_bytes()
                                               if manifest.is_file() else b"")


def _parse_manifest(bundle: Path, data: bytes) -> dict:
    if not data:
        raise MotivnetError(f"bundle {bundle} has no {BUNDLE_MANIFEST}: not a motivnet-edge "
                            f"bundle, or cut short")
    manifest = Manifest.parse(data, f"{BUNDLE_MANIFEST} of bundle {bundle}")
    unsized = next((e["path"] for e in manifest.files if e.get("bytes") is None), None)
    if unsized is not None:
        raise MotivnetError(f"bundle {bundle}: {BUNDLE_MANIFEST} lists {unsized} without its "
                            f"bytes: not a valid manifest")
    return {**manifest.info, "files": manifest.files}


def compare(bundle: Path, files: dict[str, tuple[str, int]], manifest: dict) -> None:
    """Every file listed and matching, nothing listed missing."""
    listed = {e["path"]: e for e in manifest["files"]}
    for rel, (sha, size) in sorted(files.items()):
        entry = listed.get(rel)
        if entry is None:
            raise MotivnetError(f"bundle {bundle}: {rel} is not listed in {BUNDLE_MANIFEST}: "
                                f"something was added to the bundle")
        if size != entry["bytes"]:
            raise MotivnetError(f"bundle {bundle}: {rel} is {size:,} bytes, the manifest lists "
                                f"{entry['bytes']:,}: it is truncated or changed")
        if sha != entry["sha256"]:
            raise MotivnetError(f"bundle {bundle}: {rel} does not match its sha256 in "
                                f"{BUNDLE_MANIFEST}: it is damaged or changed")
    missing = sorted(set(listed) - set(files))
    if missing:
        raise MotivnetError(f"bundle {bundle}: {', '.join(missing)} listed in "
                            f"{BUNDLE_MANIFEST} but missing")


def check_model(bundle: Path, model_dir: Path, manifest: dict) -> dict:
    artifact = model_dir / str(manifest.get("artifact", ""))
    if not manifest.get("artifact") or not artifact.is_file():
        raise MotivnetError(f"bundle {bundle}: its model/{manifest.get('artifact')} is missing")
    check_manifest(artifact)
    meta = read_metadata(artifact)
    if list(meta["labels"]) != list(manifest.get("labels", meta["labels"])):
        raise MotivnetError(f"bundle {bundle}: the model's labels {meta['labels']} are not "
                            f"the bundle's {manifest.get('labels')}")
    return meta


def verify(bundle: Path, model_only: bool = False) -> tuple[dict, dict]:
    """(the bundle's manifest, the model's metadata); MotivnetError naming what is wrong.
    ``model_only`` (an unpacked folder whose files were checked already, as install.sh does
    with sha256sum): the model's files against its own manifest and its metadata only."""
    bundle = Path(bundle)
    if bundle.is_dir():
        if model_only:
            manifest_path = bundle / BUNDLE_MANIFEST
            manifest = _parse_manifest(bundle, manifest_path.read_bytes()
                                       if manifest_path.is_file() else b"")
        else:
            _, files, manifest = read_folder(bundle)
            compare(bundle, files, manifest)
        return manifest, check_model(bundle, bundle / "model", manifest)
    if model_only:
        raise MotivnetError(f"--model-only takes an unpacked bundle folder, not {bundle}")
    if not bundle.is_file():
        raise MotivnetError(f"bundle {bundle} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        _, files, manifest = read_tar(bundle, Path(tmp))
        compare(bundle, files, manifest)
        return manifest, check_model(bundle, Path(tmp), manifest)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge verify``."""
    p.add_argument("bundle", type=Path, help="a bundle (.tar.gz) or its unpacked folder")
    p.add_argument("--model-only", action="store_true",
                   help="an unpacked folder whose files were checked already (install.sh runs "
                        "sha256sum -c first): check only the model and its metadata")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge verify``: the bundle's files and model checked; one line saying what it
    holds."""
    manifest, meta = verify(args.bundle, args.model_only)
    checked = "the model's files match their sha256" if args.model_only else \
        f"{len(manifest['files'])} files match their sha256"
    print(f"{args.bundle}: ok: {checked}; model "
          f"{manifest['artifact']} ({meta['precision']}, {len(meta['labels'])} classes) for "
          f"target {manifest.get('target')} on {manifest.get('platform')}, "
          f"motivnet-edge {manifest.get('version')}")
    return 0
