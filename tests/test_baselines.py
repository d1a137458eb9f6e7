"""Baselines: published parameter counts and a forward/backward pass at 224 and 256 px."""

import pytest
import torch

import nexnet
from nexnet.profile import count_parameters

PUBLISHED_M = {  # millions of parameters, as published for one output class
    "unet": 31.0,  # Ronneberger et al. 2015 (as usually re-implemented, base 64)
    "unetpp": 9.0,  # Zhou et al. 2018, base 32
    "transunet": 105.0,  # Chen et al. 2021, R50-ViT-B/16 at 224
    "segformer_b0": 3.7,  # Xie et al. 2021, encoder + decoder
    "segformer_b2": 27.5,
}


@pytest.mark.parametrize("name, millions", PUBLISHED_M.items())
def test_parameter_count_within_5_percent(name, millions):
    n = count_parameters(nexnet.create_model(name)) / 1e6
    assert abs(n - millions) / millions < 0.05, f"{name}: {n:.2f}M against {millions}M"


@pytest.mark.parametrize("name", list(PUBLISHED_M))
@pytest.mark.parametrize("size", [224, 256])
def test_forward_and_backward(name, size):
    torch.manual_seed(0)
    model = nexnet.create_model(name)
    x = torch.randn(1, 3, size, size)
    out = model(x)
    assert out.shape == (1, 1, size, size)
    out.mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert dead == []


def test_every_registered_model_saves_and_loads(tmp_path):
    for name in nexnet.list_models():
        model = nexnet.create_model(name).eval()
        model.save_pretrained(tmp_path / name)
        loaded = nexnet.from_pretrained(tmp_path / name).eval()
        assert type(loaded) is type(model) and loaded.config == model.config


def test_deep_supervision_and_bad_sizes():
    ds = nexnet.create_model("unetpp", deep_supervision=True, base_width=8)
    assert ds(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="height 40 is not a multiple of 16; use 32 or 48"):
        nexnet.create_model("unet", base_width=4)(torch.randn(1, 3, 40, 48))
    with pytest.raises(ValueError, match="multiple of 32"):
        nexnet.create_model("segformer_b0")(torch.randn(1, 3, 48, 48))
