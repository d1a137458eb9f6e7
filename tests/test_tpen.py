import math

import pytest
import torch

from nexnet.models import TPEN
from nexnet.models.tpen import PowerSeries, power_series


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


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("clip", [None, 1.5])
def test_fused_power_series_matches_recorded_autograd(order, clip):
    torch.manual_seed(order)
    x = (torch.randn(2, 3, 4, 5, dtype=torch.float64) * 2).requires_grad_()
    a = torch.randn(order, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    fused = PowerSeries.apply(x, a, clip)
    reference = power_series(x, a, clip)
    torch.testing.assert_close(fused, reference)
    grads = torch.autograd.grad(fused, (x, a), g)
    torch.testing.assert_close(grads, torch.autograd.grad(reference, (x, a), g))
    if clip is not None and order > 1:
        clipped = x.detach().abs() > clip
        assert clipped.any() and (grads[0][clipped] == 0).all()


def test_fused_power_series_gradcheck():
    x = (torch.randn(2, 2, 3, 3, dtype=torch.float64) * 1.5).requires_grad_()
    a = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a: PowerSeries.apply(x, a, 2.0), (x, a))


def test_fused_tpen_channels_last_and_explicit_formula():
    # channels_last input, explicit powers (not Horner), float32: the layout must not change values.
    torch.manual_seed(1)
    layer = TPEN(4, order=3, clip=2.0)
    x = (torch.randn(2, 4, 6, 5) * 2).to(memory_format=torch.channels_last)
    a = layer.coefficients.detach()
    xc = x.clamp(-2, 2)
    expected = sum(a[n - 1].view(1, 4, 1, 1) * xc**n for n in (1, 2, 3))
    torch.testing.assert_close(layer.expand(x), expected, rtol=1e-5, atol=1e-5)


def test_linear_init_starts_as_the_plain_neuron_and_learns_every_order():
    torch.manual_seed(0)
    layer = TPEN(3, order=3, init="linear", clip=8.0)  # the clamp NExNet Seg uses
    assert layer.coefficients.detach().tolist() == [[1.0] * 3, [0.0] * 3, [0.0] * 3]
    x = torch.rand(2, 3, 4, 4) * 3
    plain = TPEN(3, order=1, trainable=False)
    torch.testing.assert_close(layer(x), plain(x))  # inside the clamp: exactly BN(x)
    big = x.clone()
    big[0, :, 0, 0] = 20.0
    assert not torch.allclose(layer(big), plain(big))  # beyond it the input is clamped, the plain neuron's is not
    layer(x).pow(2).mul(torch.randn(2, 3, 4, 4)).sum().backward()
    assert (layer.coefficients.grad.abs() > 0).all()  # the zero orders receive gradient too


def test_unknown_init_is_named():
    with pytest.raises(ValueError, match="init must be one of log1p, linear"):
        TPEN(2, init="zeros")
