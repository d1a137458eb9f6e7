"""Manhattan self-attention (MaSA), after RMT (Fan et al., CVPR 2024)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .depthwise import DepthwiseConv2d

MASA_MODES = ("decomposed", "full")


def head_gammas(num_heads: int, gamma: float | str) -> torch.Tensor:
    """Per-head decay ``gamma_h`` in (0, 1).

    ``gamma`` is one value shared by all heads, or ``"rmt"`` for RMT's schedule
    ``gamma_h = 1 - 2^-(2 + 4h/N)``, ``h = 0..N-1``.
    """
    if isinstance(gamma, str):
        if gamma != "rmt":
            raise ValueError(f"gamma must be a number in (0, 1) or 'rmt', got {gamma!r}")
        h = torch.arange(num_heads, dtype=torch.float64)
        return 1.0 - 2.0 ** (-(2.0 + 4.0 * h / num_heads))
    if not 0.0 < float(gamma) < 1.0:
        raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}")
    return torch.full((num_heads,), float(gamma), dtype=torch.float64)


def manhattan_log_decay_1d(length: int, log_gamma: torch.Tensor) -> torch.Tensor:
    """``log(gamma_h) * |i - j|`` as a ``(heads, length, length)`` float64 tensor."""
    pos = torch.arange(length, dtype=torch.float64)
    dist = (pos[:, None] - pos[None, :]).abs()
    return log_gamma[:, None, None] * dist


def manhattan_log_decay_2d(height: int, width: int, log_gamma: torch.Tensor) -> torch.Tensor:
    """``log(gamma_h) * D`` with ``D`` the Manhattan distance between row-major token positions.

    Shape ``(heads, H*W, H*W)``, float64.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dist = (ys[:, None] - ys[None, :]).abs() + (xs[:, None] - xs[None, :]).abs()
    return log_gamma[:, None, None] * dist


def _float32_attention_is_faster(q: torch.Tensor) -> bool:
    """On CPU, SDPA's bfloat16/float16 backward runs 1.7-4x slower than its float32 one (a batch of
    four 224 x 224 maps: 193 against 113 ms per pass at level 1, 71 against 17 at level 3), so
    under autocast a training step attends in float32. Inference keeps the low precision (faster)."""
    return q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()


class ManhattanSelfAttention(nn.Module):
    """Pre-norm residual Manhattan self-attention over a feature map.

    ``y = x + proj(attention(norm(x)) + lce(v))`` where ``attention`` adds ``log(gamma_h) * distance``
    to the logits, either over all token pairs (``mode="full"``, ``O((HW)^2)``) or along rows and
    then columns (``mode="decomposed"``, ``O(HW(H + W))``). ``lce`` is a depthwise 5x5 convolution of
    ``V``. Decay masks depend only on the map size, so they are cached per size, device and dtype.

    Args:
        dim: channels ``C``.
        head_dim: channels per head ``d``; ``heads = max(1, C // d)``.
        gamma: decay shared by all heads (a float) or ``"rmt"`` for RMT's per-head schedule.
        mode: ``"decomposed"`` (default) or ``"full"``.
        lce_kernel: kernel size of the local context enhancement.
        zero_init: start the output projection at zero, so the block starts as the identity and
            the attention is added in as it learns (as LayerScale or ReZero do).

    Shapes: input ``(B, C, H, W)``, output ``(B, C, H, W)``.
    """

    def __init__(
        self,
        dim: int,
        head_dim: int = 32,
        gamma: float | str = 0.8,
        mode: str = "decomposed",
        lce_kernel: int = 5,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MASA_MODES:
            raise ValueError(f"MaSA mode must be one of {MASA_MODES}, got {mode!r}")
        heads = max(1, dim // head_dim)
        if dim % heads:
            raise ValueError(f"MaSA: {dim} channels do not split into {heads} heads of {head_dim}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.mode = mode
        self.gamma = gamma
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.lce = DepthwiseConv2d(dim, lce_kernel)
        self.proj = nn.Linear(dim, dim)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        # Derived from the config, kept in float64 off the module so dtype moves cannot round it.
        self.log_gamma = torch.log(head_gammas(heads, gamma))
        self._masks: dict[tuple, torch.Tensor] = {}

    def decay_mask(self, size: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Cached additive decay mask: ``(1, heads, L, L)`` for ``(L,)``, ``(1, heads, HW, HW)`` for ``(H, W)``."""
        key = (size, like.device, like.dtype)
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        mask = None if tracing else self._masks.get(key)  # traced: built from the input's shape
        if mask is None:
            if len(size) == 1:
                mask = manhattan_log_decay_1d(size[0], self.log_gamma)
            else:
                mask = manhattan_log_decay_2d(size[0], size[1], self.log_gamma)
            # A 4-D (1, heads, L, L) mask lets SDPA use the fused CPU kernel; a 3-D one falls back to math.
            mask = mask.unsqueeze(0).to(device=like.device, dtype=like.dtype)
            if not tracing:
                self._masks[key] = mask
        return mask

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module signature
        self._masks.clear()  # device or dtype moves invalidate the cache
        return super()._apply(fn, recurse)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Token mixing alone. ``q, k, v``: ``(B, H, W, heads, d)``; returns ``(B, H, W, heads, d)``."""
        b, h, w, nh, d = q.shape
        if self.mode == "full":

            def tokens(t: torch.Tensor) -> torch.Tensor:
                return t.reshape(b, h * w, nh, d).transpose(1, 2)  # (B, heads, HW, d)

            mask = self.decay_mask((h, w), q)
            out = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(v), attn_mask=mask)
            return out.transpose(1, 2).reshape(b, h, w, nh, d)

        # Rows: sequences of length W, batch B*H.
        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b * h, w, nh, d).transpose(1, 2)  # (B*H, heads, W, d)

        row_out = F.scaled_dot_product_attention(
            rows(q), rows(k), rows(v), attn_mask=self.decay_mask((w,), q)
        )  # (B*H, heads, W, d)

        # Columns: sequences of length H, batch B*W; V is the row pass's output.
        def cols(t: torch.Tensor) -> torch.Tensor:
            return t.permute(0, 2, 3, 1, 4).reshape(b * w, nh, h, d)  # (B*W, heads, H, d)

        row_map = row_out.reshape(b, h, nh, w, d).transpose(2, 3)  # (B, H, W, heads, d)
        out = F.scaled_dot_product_attention(
            cols(q), cols(k), cols(row_map), attn_mask=self.decay_mask((h,), q)
        )  # (B*W, heads, H, d)
        return out.reshape(b, w, nh, h, d).permute(0, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view when x is channels_last
        q, k, v = self.qkv(self.norm(tokens)).reshape(b, h, w, 3, self.heads, self.head_dim).unbind(3)
        if _float32_attention_is_faster(q):
            with torch.autocast(device_type=q.device.type, enabled=False):
                mixed = self.mix(q.float(), k.float(), v.float()).to(q.dtype)
        else:
            mixed = self.mix(q, k, v)
        mixed = mixed.reshape(b, h, w, c)
        v_map = v.reshape(b, h, w, c).permute(0, 3, 1, 2)
        local = self.lce(v_map).permute(0, 2, 3, 1)
        return x + self.proj(mixed + local).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, gamma={self.gamma}, mode={self.mode}"
