"""The MotivNet architecture: sizes, parameter counts, the head's behaviour, precision rules."""

import pytest
import torch

from motivnet_edge.compress.models.motivnet import (
    MODELS,
    build_motivnet,
    count_macs,
    inference_dtype,
)
from motivnet_edge.targets.errors import MotivnetError

PUBLISHED_BILLIONS = {"motivnet-0.3b": 0.336, "motivnet-0.6b": 0.664,
                      "motivnet-1b": 1.169, "motivnet-2b": 2.163}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED_BILLIONS))
def test_published_sizes_have_their_parameter_count(name):
    model = build_motivnet(name, device="meta")
    # MotivNet's table counts the Sapiens backbone with its 64x64+cls pretrain grid; ours has
    # the 64x48 grid plus the ML-Decoder head, so allow 3 %.
    assert n_params(model) / 1e9 == pytest.approx(PUBLISHED_BILLIONS[name], rel=0.03)


def test_motivnet_1b_counts_1_161_billion_parameters():
    model = build_motivnet("motivnet-1b", device="meta")
    assert n_params(model) / 1e9 == pytest.approx(1.161, rel=0.005)
    assert model.pose_encoder.grid == (64, 48)
    macs = count_macs(model, (1, 3, 1024, 768))
    assert macs / 1e12 == pytest.approx(4.6, rel=0.05)


def test_tiny_is_small_and_classifies_a_batch():
    model = build_motivnet("motivnet-tiny").eval()
    assert n_params(model) < 2_000_000
    h, w = MODELS["motivnet-tiny"]["img_size"]
    x = torch.randn(3, 3, h, w)
    out = model(x)
    assert out.shape == (3, 7)
    # each image's logits depend on that image only
    assert torch.allclose(model(x[1:2]), out[1:2], atol=1e-5)


def test_query_embeddings_are_fixed_but_saved():
    model = build_motivnet("motivnet-tiny")
    assert not model.decoder.decoder.query_embed.weight.requires_grad
    assert "decoder.decoder.query_embed.weight" in model.state_dict()


def test_unknown_size_is_named_in_the_error():
    with pytest.raises(MotivnetError, match="motivnet-9b"):
        build_motivnet("motivnet-9b")


def test_half_precision_only_on_cuda():
    assert inference_dtype("cpu", "bf16") == torch.float32
    assert inference_dtype("cuda", "bf16") == torch.bfloat16
    assert inference_dtype("cuda", "fp16") == torch.float16
    with pytest.raises(MotivnetError, match="int4"):
        inference_dtype("cpu", "int4")
