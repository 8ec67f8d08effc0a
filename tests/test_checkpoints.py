"""Checkpoint loading: published MotivNet keys, Sapiens pretrain remapping, TorchScript, errors."""

import pytest
import torch
from torch import nn

from motivnet_edge.compress.models.checkpoints import load_checkpoint, resize_pos_embed
from motivnet_edge.compress.models.motivnet import build_motivnet
from motivnet_edge.targets.errors import MotivnetError

PUBLISHED_KEYS = [
    "pose_encoder.projection.weight", "pose_encoder.pos_embed",
    "pose_encoder.layers.0.ln1.weight", "pose_encoder.layers.0.attn.qkv.weight",
    "pose_encoder.layers.0.attn.proj.bias", "pose_encoder.layers.0.ffn.layers.0.0.weight",
    "pose_encoder.layers.0.ffn.layers.1.weight", "pose_encoder.ln1.bias",
    "decoder.decoder.layers.1.norm3.weight", "decoder.decoder.layers.0.self_attn.in_proj_weight",
    "decoder.decoder.layers.0.self_attn.out_proj.bias", "decoder.decoder.layers.1.linear2.weight",
    "decoder.decoder.embed_standart.weight", "decoder.decoder.query_embed.weight",
    "decoder.decoder.duplicate_pooling", "decoder.decoder.duplicate_pooling_bias",
]


def tiny_input(n=2):
    torch.manual_seed(1)
    return torch.randn(n, 3, 128, 96)


def sapiens_pretrain_state(model, grid=64, with_cls=True):
    """A Sapiens pretrain checkpoint made from ``model``'s backbone: Sapiens names, a cls token
    and a square position grid."""
    out = {}
    dim = model.pose_encoder.pos_embed.shape[-1]
    for k, v in model.pose_encoder.state_dict().items():
        if k == "pos_embed":
            continue
        out[k.replace("projection.", "patch_embed.projection.", 1)
            if k.startswith("projection.") else k] = v.clone()
    ramp = torch.linspace(0, 1, grid)
    pos = torch.zeros(1, grid, grid, dim)
    pos[..., 0] = ramp[:, None]  # rows
    pos[..., 1] = ramp[None, :]  # columns
    pos = pos.reshape(1, grid * grid, dim)
    if with_cls:
        out["cls_token"] = torch.randn(1, 1, dim)
        pos = torch.cat([torch.full((1, 1, dim), 7.0), pos], dim=1)
    out["pos_embed"] = pos
    return out


def test_published_key_names_round_trip_with_identical_logits(tmp_path):
    model = build_motivnet("motivnet-tiny").eval()
    state = model.state_dict()
    assert set(PUBLISHED_KEYS) <= set(state)
    path = tmp_path / "MotivNet.pth"
    torch.save(state, path)
    fresh = build_motivnet("motivnet-tiny").eval()
    x = tiny_input()
    assert not torch.allclose(fresh(x), model(x))
    result = load_checkpoint(fresh, path)
    assert result.kind == "motivnet" and result.loaded == "all"
    assert torch.equal(fresh(x), model(x))


def test_sapiens_pretrain_loads_with_cls_dropped_and_grid_resized(tmp_path):
    source = build_motivnet("motivnet-tiny")
    path = tmp_path / "sapiens_tiny_epoch_1_clean.pth"
    torch.save({"state_dict": sapiens_pretrain_state(source)}, path)
    model = build_motivnet("motivnet-tiny")
    head_before = model.decoder.state_dict()
    result = load_checkpoint(model, path)
    assert result.kind == "sapiens-pretrain" and result.loaded == "backbone"
    assert result.pos_embed_resized == ((64, 64), (8, 6))
    assert torch.equal(model.pose_encoder.layers[2].attn.qkv.weight,
                       source.pose_encoder.layers[2].attn.qkv.weight)
    for k, v in model.decoder.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    pos = model.pose_encoder.pos_embed.reshape(8, 6, -1)
    # the cls token's value 7.0 must not leak in; ramps survive the resampling
    assert pos.abs().max() < 1.5
    assert torch.all(pos[1:, :, 0] > pos[:-1, :, 0]) and torch.all(pos[:, 1:, 1] > pos[:, :-1, 1])


def test_resize_pos_embed_64x64_with_cls_to_64x48():
    pos = torch.randn(1, 1 + 64 * 64, 8)
    out, src = resize_pos_embed(pos, (64, 48))
    assert src == (64, 64) and out.shape == (1, 3072, 8)


class _SapiensLike(nn.Module):
    """A Sapiens-named backbone for scripting: patch_embed.projection, pos_embed, layers, ln1."""

    def __init__(self, motivnet):
        super().__init__()
        enc = motivnet.pose_encoder
        self.patch_embed = nn.Module()
        self.patch_embed.projection = enc.projection
        self.pos_embed = nn.Parameter(enc.pos_embed.detach().clone())
        self.layers = enc.layers
        self.ln1 = enc.ln1

    def forward(self, x):
        x = self.patch_embed.projection(x).flatten(2).transpose(1, 2) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.ln1(x)


def test_sapiens_torchscript_backbone_loads(tmp_path):
    source = build_motivnet("motivnet-tiny").eval()
    path = tmp_path / "sapiens_tiny_torchscript.pt2"
    torch.jit.trace(_SapiensLike(source), tiny_input(1)).save(str(path))
    model = build_motivnet("motivnet-tiny").eval()
    result = load_checkpoint(model, path)
    assert result.kind == "sapiens-torchscript"
    x = tiny_input()
    assert torch.allclose(model.pose_encoder(x), source.pose_encoder(x), atol=1e-6)


def test_wrong_checkpoint_reports_missing_and_unexpected_keys(tmp_path):
    state = build_motivnet("motivnet-tiny").state_dict()
    del state["pose_encoder.ln1.weight"]
    state["decoder.decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(MotivnetError) as err:
        load_checkpoint(build_motivnet("motivnet-tiny"), path)
    text = str(err.value)
    assert "detected: motivnet" in text and str(path) in text
    assert "1 missing keys: pose_encoder.ln1.weight" in text
    assert "1 unexpected keys: decoder.decoder.extra.weight" in text


def test_checkpoint_of_another_size_reports_shapes(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(build_motivnet("motivnet-tiny", num_classes=8).state_dict(), path)
    with pytest.raises(MotivnetError, match="wrong shapes: decoder.decoder.duplicate_pooling"):
        load_checkpoint(build_motivnet("motivnet-tiny"), path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "MotivNet.pth"
    torch.save(build_motivnet("motivnet-tiny").state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(MotivnetError, match=f"cannot read checkpoint {path}"):
        load_checkpoint(build_motivnet("motivnet-tiny"), path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": build_motivnet("motivnet-tiny").state_dict(), "obj": _Obj()}, path)
    with pytest.raises(MotivnetError, match="holds Python objects beyond tensors") as err:
        load_checkpoint(build_motivnet("motivnet-tiny"), path)
    assert "evil.pth" in str(err.value) and "weights_only" not in str(err.value)


class _Obj:
    pass
