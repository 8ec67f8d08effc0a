"""MotivNet (Sapiens-FER): a Sapiens ViT backbone with an ML-Decoder head, in PyTorch.

Module names follow the published checkpoint's keys (``pose_encoder.*``, ``decoder.decoder.*``)
so a ``MotivNet.pth`` state dict loads strictly. Sizes are registered by name, timm-style:
``MODELS[name]`` is the argument dict of :class:`MotivNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from motivnet_edge.compress.registry import MOTIVNET_SIZES
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import MOTIVNET_SPEC, CropSpec


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        # Names match the checkpoint: ffn.layers.0.0 (first Linear), ffn.layers.1 (second).
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()),
                                    nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = FFN(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


def grid_size(img_size: tuple[int, int], patch: int, padding: int) -> tuple[int, int]:
    return tuple((s + 2 * padding - patch) // patch + 1 for s in img_size)  # type: ignore


class SapiensBackbone(nn.Module):
    """Patch embedding (Conv k16 s16 p2), learned position embedding, pre-norm blocks, final LN."""

    def __init__(self, img_size: tuple[int, int], dim: int, depth: int, heads: int, mlp: int,
                 patch: int = 16, padding: int = 2) -> None:
        super().__init__()
        self.grid = grid_size(img_size, patch, padding)
        self.projection = nn.Conv2d(3, dim, patch, patch, padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        self.layers = nn.ModuleList(Block(dim, heads, mlp) for _ in range(depth))
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection(x).flatten(2).transpose(1, 2) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.ln1(x)


class DecoderLayer(nn.Module):
    """ML-Decoder layer: queries skip self-attention, cross-attend to tokens, then an FFN."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d, ffn)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d, eps=1e-5) for _ in range(3))
        self.dropout = nn.Dropout(dropout)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q = self.norm1(q + self.dropout1(q))
        q = self.norm2(q + self.dropout2(self.self_attn(q, memory, memory, need_weights=False)[0]))
        return self.norm3(q + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(q))))))


class MLDecoder(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, d: int = 1152, heads: int = 8,
                 ffn: int = 2048, layers: int = 2) -> None:
        super().__init__()
        self.embed_standart = nn.Linear(in_dim, d)
        self.query_embed = nn.Embedding(num_classes, d)
        self.query_embed.requires_grad_(False)  # fixed queries, saved but not trained
        self.layers = nn.ModuleList(DecoderLayer(d, heads, ffn) for _ in range(layers))
        self.duplicate_pooling = nn.Parameter(torch.empty(num_classes, d, 1))
        self.duplicate_pooling_bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.xavier_normal_(self.duplicate_pooling)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        memory = F.relu(self.embed_standart(tokens))
        q = self.query_embed.weight.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, memory)
        # group fully-connected: logit_k = <q_k, w_k> + b_k
        return (q * self.duplicate_pooling[:, :, 0]).sum(-1) + self.duplicate_pooling_bias


class _DecoderWrapper(nn.Module):
    """Holds the decoder under ``decoder.decoder`` as in the published checkpoint."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.decoder = MLDecoder(**kwargs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens)


class MotivNet(nn.Module):
    """Sapiens backbone + ML-Decoder. Input (B, 3, H, W) normalised RGB; output (B, classes)."""

    def __init__(self, img_size: tuple[int, int] = (1024, 768), dim: int = 1536, depth: int = 40,
                 heads: int = 24, mlp: int = 6144, num_classes: int = 7, dec_dim: int = 1152,
                 dec_heads: int = 8, dec_ffn: int = 2048, patch: int = 16) -> None:
        super().__init__()
        self.img_size = tuple(img_size)
        self.pose_encoder = SapiensBackbone(self.img_size, dim, depth, heads, mlp, patch)
        self.decoder = _DecoderWrapper(in_dim=dim, num_classes=num_classes, d=dec_dim,
                                       heads=dec_heads, ffn=dec_ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.pose_encoder(x))


MODELS = MOTIVNET_SIZES  # name -> MotivNet's keyword arguments


def crop_spec_for(name: str) -> CropSpec:
    """MotivNet's preprocessing scaled to the model's input size (white padding, RGB)."""
    h, w = MODELS[name]["img_size"]
    return CropSpec(**{**MOTIVNET_SPEC.to_dict(), "height": h, "width": w})


def build_motivnet(name: str, num_classes: int = len(AFFECTNET7),
                   device: str | torch.device = "cpu") -> MotivNet:
    """Build a registered size; ``device='meta'`` allocates nothing (for counting)."""
    if name not in MODELS:
        raise MotivnetError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    with torch.device(device):
        return MotivNet(num_classes=num_classes, **MODELS[name])


def inference_dtype(device: torch.device | str, precision: str = "fp32") -> torch.dtype:
    """bf16/fp16 only on CUDA; the CPU always runs fp32."""
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise MotivnetError(f"precision {precision!r} is not one of {sorted(table)}")
    return table[precision] if torch.device(device).type == "cuda" else torch.float32


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass, counted by torch's FLOP counter.

    Build the model on the meta device to count a large one without running it."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(input_shape, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2
