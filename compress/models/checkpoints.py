"""Loading MotivNet weights safely: MotivNet state dicts, Sapiens pretrain checkpoints and Sapiens
TorchScript backbones. Never unpickles arbitrary objects (``weights_only=True`` or safetensors).

Foreign checkpoints go through a filter, timm-style: wrapper keys and prefixes stripped, names
swapped by a table, the cls token dropped and the position embedding resampled to the model's
grid, then a strict load whose failure lists missing and unexpected keys.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path

from .motivnet import MotivNet

# (old prefix, new prefix): Sapiens pretrain names -> MotivNet names. First match wins.
SAPIENS_TO_MOTIVNET: tuple[tuple[str, str], ...] = (
    ("patch_embed.projection.", "pose_encoder.projection."),
    ("pos_embed", "pose_encoder.pos_embed"),
    ("layers.", "pose_encoder.layers."),
    ("ln1.", "pose_encoder.ln1."),
)
WRAPPER_KEYS = ("state_dict", "model", "module")
STRIP_PREFIXES = ("module.", "backbone.")
DROPPED = ("cls_token",)


@dataclass
class LoadResult:
    path: Path
    kind: str  # motivnet | sapiens-pretrain | sapiens-torchscript
    loaded: str  # "all" or "backbone"
    pos_embed_resized: tuple[tuple[int, int], tuple[int, int]] | None = None

    def describe(self) -> str:
        text = f"{self.kind} checkpoint {self.path} ({self.loaded} weights)"
        if self.pos_embed_resized:
            (a, b), (c, d) = self.pos_embed_resized
            text += f", position grid resized {a}x{b} -> {c}x{d}"
        return text


def _key_report(path: Path, kind: str, missing: list[str], unexpected: list[str],
                mismatched: list[str]) -> str:
    def few(keys: list[str]) -> str:
        head = ", ".join(keys[:5])
        return head + (f", ... ({len(keys) - 5} more)" if len(keys) > 5 else "")

    parts = [f"checkpoint {path} (detected: {kind}) does not fit the model:"]
    if missing:
        parts.append(f"{len(missing)} missing keys: {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} keys with wrong shapes: {few(mismatched)}")
    return "\n  ".join(parts)


def save_checkpoint(obj: object, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically and byte-for-byte reproducibly: written through a
    file object, so the archive's inner folder is not named after the temporary file."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in z.namelist())


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors in ``path`` and the file's format: ``safetensors``, ``torchscript`` or
    ``state-dict``. Errors name the file and say why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path)), "safetensors"
        if is_torchscript(path):
            module = torch.jit.load(str(path), map_location="cpu")
            return dict(module.state_dict()), "torchscript"
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MotivnetError:
        raise
    except pickle.UnpicklingError as exc:  # a pickle of Python objects, not only tensors
        raise MotivnetError(
            f"checkpoint {path} holds Python objects beyond tensors (a pickled model or "
            f"training state); motivnet-edge never unpickles such files, since loading one can "
            f"run any code. Save the model's state_dict() (or safetensors) and give that "
            f"file") from exc
    except Exception as exc:  # truncated zip, not a checkpoint at all
        raise MotivnetError(f"cannot read checkpoint {path}: truncated or not a torch, "
                            f"TorchScript or safetensors file ({type(exc).__name__})") from exc
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MotivnetError(f"checkpoint {path} holds no state dict of tensors")
    return obj, "state-dict"


def detect_kind(state: dict[str, torch.Tensor]) -> str:
    keys = list(state)
    if any(k.startswith("pose_encoder.") for k in keys):
        return "motivnet"
    if any(k.startswith(("patch_embed.", "layers.")) for k in keys):
        return "sapiens-pretrain"
    return "unknown"


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in STRIP_PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, tuple]:
    """Drop a cls token if present and resample a square (or already fitting) position grid
    bicubically to ``grid``. Returns the new (1, gh*gw, dim) tensor and the source grid."""
    n, dim = pos.shape[-2], pos.shape[-1]
    target = grid[0] * grid[1]
    if n == target:
        return pos.reshape(1, n, dim), grid
    side = math.isqrt(n)
    if side * side != n:
        side = math.isqrt(n - 1)
        if side * side != n - 1:
            raise MotivnetError(f"position embedding of {n} tokens is neither a square grid "
                                f"nor cls + square grid")
        pos = pos[..., 1:, :]  # the cls token
    img = pos.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    img = F.interpolate(img, size=grid, mode="bicubic", align_corners=False)
    return img.permute(0, 2, 3, 1).reshape(1, target, dim).to(pos.dtype), (side, side)


def sapiens_filter(state: dict[str, torch.Tensor], model: MotivNet) -> tuple[dict, tuple | None]:
    """Sapiens pretrain (or TorchScript backbone) tensors renamed to MotivNet's backbone keys."""
    out: dict[str, torch.Tensor] = {}
    resized = None
    for k, v in _strip(state).items():
        if k in DROPPED:
            continue
        for old, new in SAPIENS_TO_MOTIVNET:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        if k == "pose_encoder.pos_embed":
            grid = model.pose_encoder.grid
            v, src = resize_pos_embed(v, grid)
            if src != grid:
                resized = (src, grid)
        out[k] = v
    return out, resized


def load_checkpoint(model: MotivNet, path: str | Path) -> LoadResult:
    """Load ``path`` into ``model`` strictly; a pretrain checkpoint fills the backbone only and
    leaves the new head as initialised. Raises MotivnetError with a key report on mismatch."""
    path = Path(path)
    state, container = read_state_dict(path)
    kind = detect_kind(_strip(state))
    resized = None
    if container == "torchscript":
        kind = "sapiens-torchscript" if kind != "motivnet" else "motivnet"
    if kind == "motivnet":
        state = _strip(state)
        expected = model.state_dict()
        scope = "all"
    else:
        state, resized = sapiens_filter(state, model)
        expected = {k: v for k, v in model.state_dict().items() if k.startswith("pose_encoder.")}
        scope = "backbone"
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state)
                        if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        raise MotivnetError(_key_report(path, kind, missing, unexpected, mismatched))
    model.load_state_dict(state, strict=scope == "all")
    return LoadResult(path, kind, scope, resized)
