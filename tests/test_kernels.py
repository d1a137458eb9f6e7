"""The hand-written backward passes and the FLOP counter fix, against torch's own ops and formulas."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nexnet.models import ManhattanSelfAttention
from nexnet.models.depthwise import DepthwiseConv2d
from nexnet.models.depthwise import _DepthwiseConv2dFunction as DepthwiseFunction
from nexnet.models.upsample import upsample_bilinear
from nexnet.profile import flop_counter

CL = torch.channels_last


def twin_convs(channels: int, kernel: int, bias: bool, dtype=torch.float64):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=bias).to(dtype)
    mine = DepthwiseConv2d(channels, kernel, bias=bias).to(dtype)
    mine.load_state_dict(ref.state_dict())  # same keys and shapes as nn.Conv2d
    return ref, mine


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_matches_nn_conv2d_in_float64(layout, bias):
    ref, mine = twin_convs(3, 5, bias)
    ref, mine = ref.to(memory_format=layout), mine.to(memory_format=layout)
    x = torch.randn(3, 3, 7, 9, dtype=torch.float64).contiguous(memory_format=layout)
    g = torch.randn(3, 3, 7, 9, dtype=torch.float64)
    outs = []
    for m in (ref, mine):
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.backward(g)
        outs.append((y, xi.grad, m.weight.grad, m.bias.grad if bias else None))
    for a, b in zip(*outs):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert mine.weight.grad.is_contiguous(memory_format=layout)


def test_depthwise_gradcheck():
    _, mine = twin_convs(2, 3, True)
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp, w, b: DepthwiseFunction.apply(inp, w, b, mine.padding),
                                    (x, mine.weight, mine.bias))  # fmt: skip


def test_depthwise_under_bf16_autocast_follows_nn_conv2d():
    ref, mine = twin_convs(4, 5, True, torch.float32)
    x = torch.randn(2, 4, 16, 16)
    grads = []
    for m in (ref, mine):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        assert y.dtype == torch.bfloat16
        y.float().square().sum().backward()
        assert m.weight.grad.dtype == torch.float32
        grads.append(m.weight.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=2e-2, atol=2e-2 * grads[0].abs().max().item())


def test_depthwise_rejects_even_kernels_and_mixed_dtypes():
    with pytest.raises(ValueError, match="odd kernel size"):
        DepthwiseConv2d(4, 4)
    with pytest.raises(RuntimeError, match="input is torch.float64 but weights are torch.float32"):
        DepthwiseConv2d(4, 3)(torch.randn(1, 4, 5, 5, dtype=torch.float64))


def test_upsample_gradient_reaches_the_kernel_channels_last():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).to(memory_format=CL).requires_grad_()
    skip = torch.randn(2, 2, 8, 10, dtype=torch.float64).to(memory_format=CL)
    up = upsample_bilinear(x, size=(8, 10))
    seen = []
    up.grad_fn.register_prehook(lambda grads: seen.append(grads[0]))
    torch.cat([up, skip], 1).pow(2).sum().backward()
    assert seen[0].is_contiguous(memory_format=CL)  # not the channel slice of the cat's gradient
    expected = torch.autograd.grad(
        torch.cat([F.interpolate(x, size=(8, 10), mode="bilinear"), skip], 1).pow(2).sum(), x
    )[0]
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)


def test_upsample_leaves_nchw_inputs_alone():
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    up = upsample_bilinear(x, scale_factor=2)
    assert not up._backward_hooks
    assert up.shape == (1, 2, 6, 6)


def conv_step_flops(counter, groups: int, n=2, c=8, h=6, k=3) -> int:
    x = torch.randn(n, c, h, h, requires_grad=True)
    w = torch.randn(c, c // groups, k, k, requires_grad=True)
    with counter as fc:
        F.conv2d(x, w, padding=k // 2, groups=groups).sum().backward()
    return fc.get_total_flops()


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_flop_counter_counts_grouped_weight_gradients_per_group(groups):
    n, c, h, k = 2, 8, 6, 3
    forward = 2 * n * h * h * c * (c // groups) * k * k  # 2 FLOPs per multiply-add of the forward pass
    # forward + input gradient + weight gradient: the same multiply-adds three times
    assert conv_step_flops(flop_counter(), groups) == 3 * forward
    if groups == 1:  # dense convolutions: the same as torch's own formula
        assert conv_step_flops(FlopCounterMode(display=False), groups) == 3 * forward


def test_masa_attends_in_float32_when_training_under_cpu_autocast(monkeypatch):
    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, kw["attn_mask"].dtype))
        return real_sdpa(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    m = ManhattanSelfAttention(32)
    x = torch.randn(1, 32, 4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        with torch.no_grad():
            m(x)
    assert seen[:2] == [(torch.float32, torch.float32)] * 2  # training: both passes in float32
    assert seen[2:] == [(torch.bfloat16, torch.bfloat16)] * 2  # inference keeps bf16 (faster there)
    y.float().sum().backward()
    assert all(p.grad is not None for p in m.parameters())
