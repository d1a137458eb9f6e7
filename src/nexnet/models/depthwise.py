"""Depthwise convolution with a faster weight gradient (MaSA's local context enhancement)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .capture import capturing_graph, is_channels_last


def _accumulation_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def depthwise_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, int], padding: tuple[int, int]):
    """``dL/dw`` of a stride-1 depthwise convolution, as ``(C, 1, kH, kW)`` in float32 or float64.

    ``dw[c, i, j] = sum_{b, y, x} x_pad[b, c, y + i, x + j] * grad[b, c, y, x]``: per image, this is
    a depthwise convolution of the input with the output gradient as its kernel. oneDNN's own
    depthwise weight gradient runs at about 3 GMAC/s on the development CPU (40 ms for a batch of
    four 32 x 224 x 224 maps in float32, 150 ms in bfloat16); this form takes about half that in
    float32 and needs no layout conversion for channels_last tensors.
    """
    channels, acc_dtype = x.shape[1], _accumulation_dtype(x)
    total = None
    for b in range(x.shape[0]):
        # grad[b] is (C, H, W); as a (C, 1, H, W) kernel it gives a (1, C, kH, kW) output.
        part = F.conv2d(x[b : b + 1], grad[b].unsqueeze(1), padding=padding, groups=channels).to(acc_dtype)
        total = part if total is None else total + part
    assert total is not None and tuple(total.shape[-2:]) == kernel
    return total.view(channels, 1, *kernel)


class _DepthwiseConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]):  # noqa: ANN001
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, (1, 1), ctx.padding, (1, 1), False, (0, 0), x.shape[1], (True, False, False)
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad, tuple(weight.shape[-2:]), ctx.padding).to(weight.dtype)
            grad_w = grad_w.contiguous(memory_format=torch.channels_last) if is_channels_last(weight) else grad_w
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3), dtype=_accumulation_dtype(grad)).to(grad.dtype)
        return grad_x, grad_w, grad_b, None


class DepthwiseConv2d(nn.Conv2d):
    """A stride-1, "same"-padded depthwise ``nn.Conv2d`` whose weight gradient, on CPU, is computed
    as a depthwise convolution per image (:func:`depthwise_weight_grad`). Same parameters and state-dict
    keys as ``nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)``.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"DepthwiseConv2d needs an odd kernel size, got {kernel_size}")
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or capturing_graph():  # measured on CPU only; CUDA keeps cuDNN's gradient
            return super().forward(x)
        device = x.device.type
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)  # what autocast would run nn.Conv2d in
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        elif weight.dtype != x.dtype:
            raise RuntimeError(f"DepthwiseConv2d: input is {x.dtype} but weights are {weight.dtype}")
        with torch.autocast(device_type=device, enabled=False):
            return _DepthwiseConv2dFunction.apply(x, weight, bias, self.padding)
