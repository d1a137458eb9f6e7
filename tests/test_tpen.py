import math

import pytest
import torch

from nexnet.models import TPEN


def test_tpen_equals_batchnorm_of_power_series():
    torch.manual_seed(0)
    layer = TPEN(4, order=3)
    with torch.no_grad():
        layer.coefficients.copy_(torch.randn(3, 4))
    x = torch.rand(2, 4, 5, 6) * 3
    a = layer.coefficients.detach()
    series = sum(a[n - 1].view(1, 4, 1, 1) * x**n for n in (1, 2, 3))
    # Training-mode BN with default affine (1, 0): per-channel batch standardisation.
    mean = series.mean(dim=(0, 2, 3), keepdim=True)
    var = series.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = (series - mean) / torch.sqrt(var + layer.norm.eps)
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-4)


def test_tpen_starts_at_log1p_series():
    layer = TPEN(3, order=4)
    expected = torch.tensor([1.0, -0.5, 1 / 3, -0.25])[:, None].expand(4, 3)
    torch.testing.assert_close(layer.coefficients.detach(), expected)
    # The expansion itself matches ln(1 + x) to fourth order for small x.
    x = torch.full((1, 3, 1, 1), 0.05)
    assert abs(layer.expand(x)[0, 0, 0, 0].item() - math.log1p(0.05)) < 0.05**5


def test_plain_neuron_is_batchnorm_alone():
    layer = TPEN(2, order=1, trainable=False)
    assert not any(p is layer.coefficients for p in layer.parameters())
    x = torch.randn(4, 2, 3, 3)
    torch.testing.assert_close(layer(x), layer.norm(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tpen_finite_under_autocast_for_large_inputs(dtype):
    layer = TPEN(2).eval()  # running stats: the raw power series would reach 1e9
    x = torch.full((2, 2, 4, 4), 1e3).to(dtype)
    naive = x**3  # what a half-precision expansion would compute
    if dtype == torch.float16:
        assert torch.isinf(naive).all()
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
    assert torch.isfinite(y).all()
    expected = (1e3 - 1e6 / 2 + 1e9 / 3) / math.sqrt(1 + layer.norm.eps)
    torch.testing.assert_close(y, torch.full_like(y, expected), rtol=1e-5, atol=0)


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order"):
        TPEN(2, order=0)
