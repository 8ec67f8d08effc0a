"""Reading the JSON metadata every artifact carries, and the manifest beside it. No torch.

One JSON blob sits under one key, :data:`METADATA_KEY`, in every format (where, each format's
module under :mod:`motivnet_edge.targets.formats` says). ``compress`` writes it; ``targets`` and
``edge`` only read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import METADATA_KEY, SCHEMA_VERSION, format_of
from motivnet_edge.targets.manifest import MANIFEST, Manifest
from motivnet_edge.targets.preprocess import CropSpec

REQUIRED = ("schema", "labels", "crop", "precision", "format")
# Every artifact checks itself, manifest or not: its metadata carries the sha256 of its files
# with the metadata blob taken out, and of the blob with this value blanked (so the digest
# covers weights, graph and metadata alike). compress writes it; every load checks it.
DIGEST_KEY = "content_sha256"
DIGEST_PLACEHOLDER = "0" * 64


def artifact_files(path: str | Path) -> list[Path]:
    """The files an artifact is made of: an OpenVINO IR is its .xml and the .bin beside it."""
    return format_of(path).files(path)


def artifact_bytes(path: str | Path) -> int:
    """The artifact's size on disk, companion files (an IR's .bin) included."""
    return sum(p.stat().st_size for p in artifact_files(path))


def whoami() -> str:
    """This process's user, for messages about files it cannot read."""
    import pwd

    try:
        return f"{pwd.getpwuid(os.geteuid()).pw_name} (uid {os.geteuid()})"
    except KeyError:
        return f"uid {os.geteuid()}"


def check_not_world_writable(path: Path, what: str) -> None:
    """Refuse a file any user may change (as ssh and mosquitto refuse theirs): whoever can write
    it decides what the daemon runs or where it sends results."""
    mode = path.stat().st_mode
    if mode & 0o002:
        raise MotivnetError(f"{what} {path} is writable by every user (mode "
                            f"{mode & 0o777:04o}): chmod o-w {path}")


def check_readable(path: Path, what: str = "artifact") -> None:
    """A clear error for a missing file, one this user may not read, or an artifact every user
    may change."""
    for p in [path, *format_of(path).files(path)[1:]] if what == "artifact" else [path]:
        if not p.is_file():
            raise MotivnetError(f"{what} {p} does not exist")
        if not os.access(p, os.R_OK):
            raise MotivnetError(f"{what} {p} is not readable by {whoami()}, the user this runs "
                                f"as: give it read permission (e.g. chmod 0644, or the "
                                f"service user's group)")
        if what == "artifact":
            check_not_world_writable(p, what)


def read_metadata(path: str | Path) -> dict:
    """The artifact's metadata dict, checked for the required fields and schema version."""
    path = Path(path)
    check_readable(path)
    fmt = format_of(path)
    try:
        text = fmt.codec().read(path)
    except MotivnetError:
        raise
    except ImportError as exc:
        raise MotivnetError(f"reading {path} needs {exc.name}: "
                            f"pip install 'motivnet-edge[{fmt.extra}]'") from exc
    except Exception as exc:  # the format's parser failed: the file is cut short or damaged
        raise MotivnetError(f"artifact {path} is truncated or corrupt: it cannot be read as "
                            f"{fmt.name} ({type(exc).__name__}); copy it again") from exc
    if text is None:
        raise MotivnetError(f"artifact {path} carries no '{METADATA_KEY}' metadata")
    meta = parse_metadata(text, path)
    check_content(path, text, meta)
    return meta


def _stored_forms(text: str) -> list[bytes]:
    """The blob as the formats store it: as is (ONNX, TFLite), or as an XML attribute value
    (OpenVINO's .xml)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return list(dict.fromkeys([text.encode("utf-8"), escaped.encode("utf-8")]))


def content_digest(path: str | Path, text: str) -> str:
    """The sha256 of the artifact's files without the metadata blob ``text``, and of the blob
    with its own digest blanked."""
    digest = hashlib.sha256()
    for f in artifact_files(path):
        data = Path(f).read_bytes()
        for form in _stored_forms(text):
            data = data.replace(form, b"")
        digest.update(len(data).to_bytes(8, "little") + data)
    claimed = _claimed_digest(text)
    blanked = text.replace(f'"{DIGEST_KEY}": "{claimed}"',
                           f'"{DIGEST_KEY}": "{DIGEST_PLACEHOLDER}"') if claimed else text
    digest.update(blanked.encode("utf-8"))
    return digest.hexdigest()


def _claimed_digest(text: str) -> str | None:
    found = re.search(rf'"{DIGEST_KEY}": "([0-9a-f]{{64}})"', text)
    return found.group(1) if found else None


def check_content(path: str | Path, text: str, meta: dict) -> None:
    """A changed byte anywhere in the artifact is refused, naming the file. Artifacts written
    before digests (no ``content_sha256``) pass."""
    claimed = meta.get(DIGEST_KEY)
    if claimed is None:
        return
    if claimed != _claimed_digest(text) or content_digest(path, text) != claimed:
        raise MotivnetError(f"artifact {path} has changed since it was written: its content "
                            f"does not match the {DIGEST_KEY} in its metadata "
                            f"({str(claimed)[:16]}...); copy it again")


def parse_metadata(text: str, path: str | Path) -> dict:
    """The metadata blob of the artifact at ``path`` from its JSON text: required fields, their
    types, the schema version and the crop spec checked."""
    try:
        meta = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # ValueError: JSON, huge numbers
        raise MotivnetError(f"artifact {path}: metadata is not JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise MotivnetError(f"artifact {path}: metadata is {meta!r}, not a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise MotivnetError(f"artifact {path}: metadata lacks fields {missing}")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise MotivnetError(f"artifact {path}: metadata field 'labels' is {labels!r}, not a "
                            f"list of class names")
    if isinstance(meta["schema"], bool) or not isinstance(meta["schema"], int):
        raise MotivnetError(f"artifact {path}: metadata field 'schema' is {meta['schema']!r}")
    if meta["schema"] > SCHEMA_VERSION:
        raise MotivnetError(f"artifact {path}: metadata schema {meta['schema']} is newer than "
                            f"this runtime's {SCHEMA_VERSION}; upgrade motivnet-edge")
    try:
        CropSpec.from_dict(meta["crop"])  # validates the crop spec
    except MotivnetError as exc:
        raise MotivnetError(f"artifact {path}: metadata field 'crop': {exc}") from exc
    try:
        output_spec(meta)  # the output layout: classes, valence, arousal
    except MotivnetError as exc:
        raise MotivnetError(f"artifact {path}: metadata {exc}") from exc
    return meta


def output_spec(meta: dict):
    """The artifact's output layout
    (:class:`motivnet_edge.targets.classifier_spec.OutputLayout`): the class outputs and the
    continuous ones (valence, arousal) its ``heads`` name (default: one output per label)."""
    from motivnet_edge.targets.classifier_spec import OutputLayout

    try:
        return OutputLayout.parse(len(meta["labels"]), meta.get("heads"))
    except MotivnetError as exc:
        raise MotivnetError(f"output layout: {exc}") from exc


def _check_size(path: Path, expected: int | None, manifest: Path) -> None:
    if not path.is_file():
        raise MotivnetError(f"artifact {path} is missing ({manifest} lists it)")
    size = path.stat().st_size
    if expected is not None and size != expected:
        how = "truncated" if size < expected else "changed"
        raise MotivnetError(f"artifact {path} is {size:,} bytes, {manifest} lists "
                            f"{expected:,}: it is {how}; copy it again (a compress run folder "
                            f"whose files were remade: 'motivnet-edge validate --out "
                            f"{manifest.parent}' lists them anew)")


def check_manifest(path: str | Path) -> str | None:
    """If a manifest lies beside ``path``, check the file's sha256 against it; returns the
    sha256 checked, or None when there is no manifest or it does not list the file."""
    path = Path(path)
    manifest = path.parent / MANIFEST
    found = Manifest.find(path.parent)
    entry = found.entry(path.name) if found else None
    if entry is None:
        return None
    check_readable(path)
    _check_size(path, entry.get("bytes"), manifest)
    for companion in entry.get("companions", []):  # OpenVINO's .bin beside its .xml
        _check_size(path.parent / companion["path"], companion.get("bytes"), manifest)
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise MotivnetError(f"artifact {path}: sha256 {actual[:16]}... does not match "
                            f"{manifest}'s {str(entry.get('sha256'))[:16]}...")
    for companion in entry.get("companions", []):
        cpath = path.parent / companion["path"]
        if sha256_file(cpath) != companion["sha256"]:
            raise MotivnetError(f"artifact {cpath}: sha256 does not match {manifest}")
    return actual
