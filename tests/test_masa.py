"""MaSA against slow references written here, independently of nexnet's helpers."""

import math

import pytest
import torch
import torch.nn.functional as F

from nexnet.models import ManhattanSelfAttention
from nexnet.models import masa as masa_module


def rmt_gammas(n: int) -> list[float]:
    return [1 - 2 ** (-(2 + 4 * h / n)) for h in range(n)]


def random_module(mode: str, gamma, dim: int = 64) -> ManhattanSelfAttention:
    torch.manual_seed(0)
    m = ManhattanSelfAttention(dim, head_dim=32, gamma=gamma, mode=mode).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return m


def projections(m: ManhattanSelfAttention, x: torch.Tensor):
    """LayerNorm over channels then the qkv projection, as plain tensors ``(H, W, C)`` each."""
    c = x.shape[1]
    t = x[0].permute(1, 2, 0)
    n = F.layer_norm(t, (c,), m.norm.weight, m.norm.bias, m.norm.eps)
    qkv = n @ m.qkv.weight.T + m.qkv.bias
    return qkv[..., :c], qkv[..., c : 2 * c], qkv[..., 2 * c :]


def finish(m: ManhattanSelfAttention, x, attn, v):
    """Add the depthwise LCE of V, project, and add the residual."""
    c = x.shape[1]
    local = F.conv2d(v.permute(2, 0, 1)[None], m.lce.weight, m.lce.bias, padding=2, groups=c)
    y = (attn + local[0].permute(1, 2, 0)) @ m.proj.weight.T + m.proj.bias
    return x + y.permute(2, 0, 1)[None]


def attend(query, keys, values, logit_bias):
    """softmax(q.k / sqrt(d) + bias) weighted sum, one query at a time."""
    d = query.shape[0]
    logits = torch.stack([query @ k / math.sqrt(d) + b for k, b in zip(keys, logit_bias)])
    w = torch.softmax(logits, dim=0)
    return sum(wi * vi for wi, vi in zip(w, values))


def reference_full(m, x, gammas):
    _, c, h, w = x.shape
    q, k, v = projections(m, x)
    d = c // len(gammas)
    out = torch.zeros(h, w, c, dtype=x.dtype)
    for head, g in enumerate(gammas):
        s = slice(head * d, (head + 1) * d)
        positions = [(i, j) for i in range(h) for j in range(w)]
        for yi, xi in positions:
            bias = [(abs(yi - y2) + abs(xi - x2)) * math.log(g) for y2, x2 in positions]
            keys = [k[y2, x2, s] for y2, x2 in positions]
            vals = [v[y2, x2, s] for y2, x2 in positions]
            out[yi, xi, s] = attend(q[yi, xi, s], keys, vals, bias)
    return finish(m, x, out, v)


def reference_decomposed(m, x, gammas):
    _, c, h, w = x.shape
    q, k, v = projections(m, x)
    d = c // len(gammas)
    rows = torch.zeros(h, w, c, dtype=x.dtype)
    out = torch.zeros(h, w, c, dtype=x.dtype)
    for head, g in enumerate(gammas):
        s = slice(head * d, (head + 1) * d)
        for yi in range(h):  # along each row: keys and values of that row
            for xi in range(w):
                bias = [abs(xi - x2) * math.log(g) for x2 in range(w)]
                rows[yi, xi, s] = attend(
                    q[yi, xi, s], [k[yi, x2, s] for x2 in range(w)],
                    [v[yi, x2, s] for x2 in range(w)], bias,
                )  # fmt: skip
        for xi in range(w):  # then along each column, over the row pass's output
            for yi in range(h):
                bias = [abs(yi - y2) * math.log(g) for y2 in range(h)]
                out[yi, xi, s] = attend(
                    q[yi, xi, s], [k[y2, xi, s] for y2 in range(h)],
                    [rows[y2, xi, s] for y2 in range(h)], bias,
                )  # fmt: skip
    return finish(m, x, out, v)


@pytest.mark.parametrize("gamma", [0.8, "rmt"])
def test_full_masa_matches_loop_reference(gamma):
    m = random_module("full", gamma)
    x = torch.randn(1, 64, 5, 6, dtype=torch.float64)
    gammas = rmt_gammas(2) if gamma == "rmt" else [gamma, gamma]
    torch.testing.assert_close(m(x), reference_full(m, x, gammas), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.8, "rmt"])
def test_decomposed_masa_matches_row_then_column_reference(gamma):
    m = random_module("decomposed", gamma)
    x = torch.randn(1, 64, 5, 6, dtype=torch.float64)
    gammas = rmt_gammas(2) if gamma == "rmt" else [gamma, gamma]
    expected = reference_decomposed(m, x, gammas)
    torch.testing.assert_close(m(x), expected, rtol=1e-9, atol=1e-9)
    # Channels-last memory gives the same numbers.
    torch.testing.assert_close(m(x.to(memory_format=torch.channels_last)), expected)


@pytest.mark.parametrize("mode", ["full", "decomposed"])
@pytest.mark.parametrize("gamma", [0.7, "rmt"])
def test_zero_query_key_gives_renormalised_manhattan_decay(mode, gamma):
    h, w, heads = 4, 5, 3
    m = ManhattanSelfAttention(heads * 32, head_dim=32, gamma=gamma, mode=mode).double()
    n = h * w
    q = torch.zeros(1, h, w, heads, n, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64).reshape(1, h, w, 1, n).expand(1, h, w, heads, n)
    weights = m.mix(q, q, v)  # with one-hot values, the output rows are the attention weights
    gammas = rmt_gammas(heads) if gamma == "rmt" else [gamma] * heads
    for head, g in enumerate(gammas):
        for yi in range(h):
            for xi in range(w):
                expected = torch.tensor(
                    [g ** (abs(yi - y2) + abs(xi - x2)) for y2 in range(h) for x2 in range(w)],
                    dtype=torch.float64,
                )
                expected /= expected.sum()
                torch.testing.assert_close(weights[0, yi, xi, head], expected)


def test_decay_masks_are_cached_per_size(monkeypatch):
    m = ManhattanSelfAttention(32, mode="decomposed")
    calls = []
    original = masa_module.manhattan_log_decay_1d
    monkeypatch.setattr(masa_module, "manhattan_log_decay_1d", lambda *a: calls.append(a[0]) or original(*a))
    m(torch.randn(1, 32, 4, 6))
    m(torch.randn(2, 32, 4, 6))
    assert sorted(calls) == [4, 6]
    m(torch.randn(1, 32, 8, 6))
    assert sorted(calls) == [4, 6, 8]


def test_gradients_reach_every_masa_parameter():
    m = ManhattanSelfAttention(64, gamma="rmt")
    m(torch.randn(2, 64, 4, 4)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "kwargs, message",
    [({"gamma": 1.0}, "strictly between"), ({"gamma": "fast"}, "'rmt'"), ({"mode": "x"}, "mode")],
)
def test_bad_masa_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ManhattanSelfAttention(32, **kwargs)
