"""Run-time settings: channels_last placement, resumed optimizer state layouts, the allocator switch."""

import os
import platform
import subprocess
import sys

import pytest
import torch

import nexnet
from nexnet.runtime import place_model, prefers_channels_last
from nexnet.training.state import load_training_state, save_training_state


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def test_conv_nets_go_channels_last_and_segformer_stays():
    model = place_model(nexnet.create_model("nexnet_seg_s"), "cpu")
    # Weights with one input channel or a 1x1 kernel are both layouts at once: leave them out.
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and min(m.weight.shape[1:]) > 1]
    assert convs and all(_is_channels_last(w) for w in convs)
    seg = place_model(nexnet.create_model("segformer_b0"), "cpu")
    assert not prefers_channels_last(seg)
    assert all(p.is_contiguous() for p in seg.parameters())


def test_channels_last_env_switch(monkeypatch):
    monkeypatch.setenv("NEXNET_CHANNELS_LAST", "0")
    model = place_model(nexnet.create_model("nexnet_seg_s"), "cpu")
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("name", ["nexnet_seg_s", "unetpp"])
def test_layouts_compute_the_same_outputs_and_gradients(name):
    torch.manual_seed(0)
    # float64, so that the two layouts' different convolution kernels agree far below the tolerance
    plain = nexnet.create_model(name).double().train()
    fast = place_model(nexnet.create_model(name).double(), "cpu").train()
    fast.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    torch.manual_seed(1)  # the same dropout masks
    y_plain = plain(x)
    torch.manual_seed(1)
    y_fast = fast(x)
    assert any(_is_channels_last(p) for p in fast.parameters())
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-9, atol=1e-10)
    y_plain.square().mean().backward()
    y_fast.square().mean().backward()
    for (n, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-7, atol=1e-10, msg=n)


def test_resumed_optimizer_state_takes_the_parameter_layout(tmp_path):
    model = place_model(nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8]), "cpu")
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 3, 64, 64)).mean().backward()
    opt.step()
    save_training_state(tmp_path / "last", model, opt, {"epoch": 1})
    model2 = place_model(nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8]), "cpu")
    opt2 = torch.optim.Adam(model2.parameters())
    assert load_training_state(tmp_path / "last", model2, opt2) == {"epoch": 1}
    pairs = [(p, q) for p, q in zip(model.parameters(), model2.parameters()) if _is_channels_last(q)]
    assert pairs
    for p, q in pairs:
        for key in ("exp_avg", "exp_avg_sq"):
            assert opt2.state[q][key].stride() == q.stride()
            torch.testing.assert_close(opt2.state[q][key], opt.state[p][key])


def _fresh_process(env: dict[str, str]) -> str:
    code = "from nexnet.runtime import keep_freed_memory as k; print(k())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}).stdout.strip()  # fmt: skip


def test_allocator_switch_in_a_fresh_process():
    assert _fresh_process({"NEXNET_MALLOC": "system"}) == "False"
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert _fresh_process({"NEXNET_MALLOC": ""}) == str(on_glibc)
