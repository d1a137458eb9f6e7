"""A forward pass captured once as a CUDA graph and replayed: one launch instead of hundreds.

At batch 1 NExNet Seg runs about 300 small kernels whose launches, not the GPU, set the latency
(issue 15). A captured graph replays them all from one CPU call. The input shape is static, which
holds for inference: every image is resized to the model's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

WARMUP_CALLS = 3  # before capture: cuDNN/cuBLAS settle their algorithms, the models fill their caches


def capture_autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast as eager runs it, but with the cast-weight cache off: a cached bf16 weight made during
    capture would be freed when the caller's autocast region ends, under the graph that still reads it."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


class GraphedForward:
    """``fn`` captured for the shape, dtype and strides of ``example``; calling it copies the input in
    and replays. The result is a static tensor that the next call overwrites: use it before then."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor,
                 amp: torch.dtype | None = None, warmup: int = WARMUP_CALLS) -> None:  # fmt: skip
        if example.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA tensor, got one on {example.device}")
        self.shape = tuple(example.shape)
        self.static_in = torch.empty_like(example)  # same strides as eager's input: the same kernels
        self.static_in.copy_(example)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), capture_autocast(amp, example.device):
            # Warm up on a side stream, as torch.cuda.graphs asks, so capture sees no first-call work.
            side = torch.cuda.Stream(example.device)
            side.wait_stream(torch.cuda.current_stream(example.device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    fn(self.static_in)
            torch.cuda.current_stream(example.device).wait_stream(side)
            with torch.cuda.graph(self.graph):
                self.static_out = fn(self.static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"graph captured for shape {self.shape}, got {tuple(x.shape)}")
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out
