"""Every registered segmentation model keeps ``SegmentationModel``'s contract: one ``(B, num_classes,
H, W)`` logits tensor for a ``(B, 3, H, W)`` input, and a config that rebuilds it."""

import pytest
import torch

import nexnet

SEGMENTATION = [name for name in nexnet.list_models() if name != "ssl_autoencoder"]  # it reconstructs images


@pytest.mark.parametrize("name", SEGMENTATION)
def test_forward_returns_one_logits_tensor_at_the_input_size(name):
    torch.manual_seed(0)
    model = nexnet.create_model(name).eval()
    side = 2 * model.size_multiple
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor), f"{name} returns {type(out).__name__}, not one tensor"
    assert out.shape == (2, model.config.get("num_classes", 1), side, side)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    rebuilt = nexnet.create_model(model.model_name, **model.config)
    assert rebuilt.config == model.config
