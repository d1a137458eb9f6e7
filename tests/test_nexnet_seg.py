import json

import pytest
import torch

import nexnet
from nexnet.errors import NexnetError
from nexnet.models import TPEN, NExNetSeg
from nexnet.models.blocks import ConvMaSA, LevelOptions, NExBlock
from nexnet.models.masa import ManhattanSelfAttention as MaSA


@pytest.mark.parametrize("form", ["residual", "lean", "revised", "paper"])
def test_gradients_reach_every_parameter_of_nexnet_seg(form):
    torch.manual_seed(0)
    model = nexnet.create_model("nexnet_seg", form=form)
    x = torch.randn(2, 3, 64, 64)  # 2x2 at the bottleneck: attention has more than one token
    out = model(x)
    (out * torch.randn_like(out)).sum().backward()
    names = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert names == []
    coefficient_grads = [m.coefficients.grad for m in model.modules() if isinstance(m, TPEN)]
    assert len(coefficient_grads) == 6 and all(g.abs().sum() > 0 for g in coefficient_grads)


@pytest.mark.parametrize("size", [(224, 224), (256, 256), (224, 320)])
def test_output_shapes(size):
    model = nexnet.create_model("nexnet_seg_s").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 1, *size)


def test_non_multiple_of_32_names_nearest_sizes():
    model = nexnet.create_model("nexnet_seg_s")
    with pytest.raises(ValueError, match=r"height 230 is not a multiple of 32; use 224 or 256"):
        model(torch.randn(1, 3, 230, 230))
    with pytest.raises(ValueError, match=r"width 20 is not a multiple of 32; use 32$"):
        model(torch.randn(1, 3, 32, 20))
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        model(torch.randn(1, 1, 32, 32))


def test_ablation_switches_change_the_architecture():
    full = nexnet.create_model("nexnet_seg_s")
    plain = nexnet.create_model("nexnet_seg_s", tpen=False, masa=False)
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert "ManhattanSelfAttention" in kinds(full)
    assert "ManhattanSelfAttention" not in kinds(plain)
    assert all(not t.coefficients.requires_grad for t in plain.modules() if isinstance(t, TPEN))
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in full.parameters())


def test_ssl_embedding_is_concatenated_at_the_bottleneck():
    model = nexnet.create_model("nexnet_seg_s", ssl_channels=8).eval()
    x = torch.randn(1, 3, 64, 64)
    e = torch.randn(1, 8, 2, 2)
    with torch.no_grad():
        a, b = model(x, e), model(x, torch.zeros_like(e))
    assert a.shape == (1, 1, 64, 64) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="pass ssl_embedding"):
        model(x)


def test_registry():
    assert {"nexnet_seg", "nexnet_seg_s"} <= set(nexnet.list_models())
    assert nexnet.list_models("nexnet_seg_*") == ["nexnet_seg_s", "nexnet_seg_ssl"]
    model = nexnet.create_model("nexnet_seg_s", num_classes=3, gamma="rmt")
    assert isinstance(model, NExNetSeg) and model.config["num_classes"] == 3
    with pytest.raises(nexnet.NexnetError, match="did you mean nexnet_seg"):
        nexnet.create_model("nexnet_sge")
    with pytest.raises(nexnet.NexnetError, match=r"no setting 'widht' \(did you mean 'widths'\?\)"):
        nexnet.create_model("nexnet_seg_s", widht=3)  # a keyword of NExNetSeg, which nexnet_seg_s passes on
    with pytest.raises(
        nexnet.NexnetError, match=r"no setting 'zzz' \(its settings: base_width, in_channels, num_classes\)"
    ):
        nexnet.create_model("unet", zzz=3)


def test_paper_widths():
    model = nexnet.create_model("nexnet_seg")
    assert model.config["widths"] == [32, 64, 128, 256, 256, 512]
    assert nexnet.create_model("nexnet_seg_s").config["widths"] == [16, 32, 64, 128, 128, 256]


def test_tpen_clip_keeps_eval_mode_finite_where_stacked_cubics_overflow():
    """Eval-mode BatchNorm with statistics narrower than the input compounds x^3 level by level."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 4
    outputs = {}
    for clip in (None, 8.0):
        model = nexnet.create_model("nexnet_seg_s", form="paper", tpen_clip=clip).eval()
        for m in model.modules():
            if isinstance(m, TPEN):
                m.norm.running_var.fill_(1e-4)  # as after early training on calmer images
        with torch.no_grad():
            outputs[clip] = model(x)
    assert not torch.isfinite(outputs[None]).all()
    assert torch.isfinite(outputs[8.0]).all()


def attending_levels(model) -> list[int]:
    return [i + 1 for i, block in enumerate(model.encoder) if isinstance(block.conv_masa.attention, MaSA)]


def dilations(model) -> list[int]:
    return [block.conv.dilation[0] for block in model.encoder]


def residual_levels(model) -> list[int]:
    return [i + 1 for i, block in enumerate(model.encoder) if block.conv_masa.residual]


def test_forms_set_tpen_init_encoder_chain_masa_levels_dilation_residual_and_explicit_keywords_win():
    default = nexnet.create_model("nexnet_seg_s")
    assert (default.config["form"], default.config["tpen_init"], default.config["encoder_chain"]) == (
        "residual", "linear", "conv_masa")  # fmt: skip
    assert attending_levels(default) == [3, 4, 5, 6] and dilations(default) == [1] * 6
    assert residual_levels(default) == [1, 2, 3, 4, 5, 6] and not default.config["masa_zero_init"]
    lean = nexnet.create_model("nexnet_seg_s", form="lean")
    assert attending_levels(lean) == [3, 4, 5, 6] and dilations(lean) == [2] * 6 and residual_levels(lean) == []
    same = nexnet.create_model("nexnet_seg_s", form="lean", dilation=1, residual=True)
    assert {k: v for k, v in same.config.items() if k != "form"} == {
        k: v for k, v in default.config.items() if k != "form"}  # fmt: skip
    assert nexnet.create_model("nexnet_seg_s", form="lean", dilation=1).config["form"] == "custom"
    revised = nexnet.create_model("nexnet_seg_s", form="revised")
    assert revised.config["tpen_init"] == "linear" and attending_levels(revised) == [1, 2, 3, 4, 5, 6]
    paper = nexnet.create_model("nexnet_seg_s", form="paper")
    assert (paper.config["tpen_init"], paper.config["encoder_chain"]) == ("log1p", "nex")
    assert attending_levels(paper) == [1, 2, 3, 4, 5, 6] and dilations(paper) == [2] * 6
    assert residual_levels(paper) == residual_levels(revised) == []
    assert nexnet.create_model("nexnet_seg_s", form="revised", masa_from=3).config["form"] == "custom"
    assert attending_levels(nexnet.create_model("nexnet_seg_s", masa=False)) == []
    mixed = nexnet.create_model("nexnet_seg_s", form="paper", encoder_chain="conv_masa")
    assert mixed.config["encoder_chain"] == "conv_masa" and mixed.encoder[0].chain == "conv_masa"
    assert mixed.encoder[0].tpen.init == "log1p"
    assert mixed.config["form"] == "custom"  # never labelled as a form it is not
    rebuilt = nexnet.create_model("nexnet_seg_s", **mixed.config)
    assert rebuilt.config == mixed.config
    assert nexnet.create_model("nexnet_seg_s", form="paper", tpen_init="log1p").config["form"] == "paper"
    with pytest.raises(NexnetError, match="form 'custom' needs encoder_chain$"):
        nexnet.create_model("nexnet_seg_s", form="custom", tpen_init="linear")
    with pytest.raises(NexnetError, match="form must be one of paper, revised, lean, residual or custom, got 'v3'"):
        nexnet.create_model("nexnet_seg_s", form="v3")
    for bad in (0, 7, 2.5, True):
        with pytest.raises(NexnetError, match=f"masa_from must be a level from 1 to 6, got {bad!r}"):
            nexnet.create_model("nexnet_seg_s", masa_from=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(NexnetError, match=f"dilation must be a whole number of at least 1, got {bad!r}"):
            nexnet.create_model("nexnet_seg_s", dilation=bad)
    for key in ("residual", "masa_zero_init"):
        with pytest.raises(NexnetError, match=f"{key} must be true or false, got 'yes'"):
            nexnet.create_model("nexnet_seg_s", **{key: "yes"})
    with pytest.raises(NexnetError, match="encoder_chain must be one of nex, conv_masa"):
        nexnet.create_model("nexnet_seg_s", encoder_chain="skip")


@pytest.mark.parametrize("chain", ["nex", "conv_masa"])
def test_encoder_chain_picks_what_goes_down(chain):
    torch.manual_seed(0)
    block = NExBlock(3, 4, LevelOptions(masa=False, chain=chain)).eval()
    x = torch.rand(2, 3, 8, 8)
    onward, skip = block(x)
    nex_out = block.tpen(block.act(block.conv(block.norm(x))))
    torch.testing.assert_close(skip, block.conv_masa(nex_out))
    torch.testing.assert_close(onward, skip if chain == "conv_masa" else nex_out)
    assert not torch.allclose(nex_out, skip)  # the two choices differ


def test_checkpoint_saved_before_forms_loads_as_the_paper_network(tmp_path):
    model = nexnet.create_model("nexnet_seg_s", form="paper", widths=[4, 4, 8, 8, 8, 8])
    model.save_pretrained(tmp_path / "ckpt")
    config_file = tmp_path / "ckpt" / "config.json"
    saved = json.loads(config_file.read_text())
    for key in ("form", "tpen_init", "encoder_chain", "masa_from"):  # as written by releases before forms
        del saved["config"][key]
    config_file.write_text(json.dumps(saved))
    loaded = nexnet.from_pretrained(tmp_path / "ckpt")
    assert loaded.config["form"] == "paper" and loaded.encoder[0].chain == "nex"
    assert attending_levels(loaded) == [1, 2, 3, 4, 5, 6]
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_revised_checkpoint_saved_before_masa_from_keeps_attention_at_every_level(tmp_path):
    model = nexnet.create_model("nexnet_seg_s", form="revised", widths=[4, 4, 8, 8, 8, 8])
    model.save_pretrained(tmp_path / "ckpt")
    config_file = tmp_path / "ckpt" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["masa_from"]  # as written before the lean form
    config_file.write_text(json.dumps(saved))
    loaded = nexnet.from_pretrained(tmp_path / "ckpt")
    assert loaded.config["form"] == "revised" and attending_levels(loaded) == [1, 2, 3, 4, 5, 6]
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_custom_checkpoint_saved_before_masa_from_keeps_attention_at_every_level(tmp_path):
    model = nexnet.create_model("nexnet_seg_s", form="custom", tpen_init="log1p", encoder_chain="conv_masa",
                                widths=[4, 4, 8, 8, 8, 8])  # fmt: skip
    assert model.config["masa_from"] == 1  # custom without masa_from: every level, as before it existed
    model.save_pretrained(tmp_path / "ckpt")
    config_file = tmp_path / "ckpt" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["masa_from"]
    config_file.write_text(json.dumps(saved))
    loaded = nexnet.from_pretrained(tmp_path / "ckpt")
    assert loaded.config["form"] == "custom" and attending_levels(loaded) == [1, 2, 3, 4, 5, 6]
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize("dilation", [1, 2])
def test_nex_convolution_taps_pixels_dilation_apart_and_keeps_the_size(dilation):
    block = NExBlock(1, 1, LevelOptions(masa=False, dilation=dilation))
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 0, 1, 2] = 1.0  # the right-hand tap: x[i, j + dilation]
        block.conv.bias.zero_()
    x = torch.arange(49.0).reshape(1, 1, 7, 7)
    out = block.conv(x)
    assert out.shape == x.shape
    shifted = torch.zeros_like(x)
    shifted[..., : 7 - dilation] = x[..., dilation:]  # zero padding beyond the edge
    torch.testing.assert_close(out, shifted)


def test_lean_checkpoint_saved_before_dilation_and_residual_existed_loads_as_it_was(tmp_path):
    for form, extra in (("lean", {}), ("custom", {"tpen_init": "linear", "encoder_chain": "conv_masa"})):
        model = nexnet.create_model("nexnet_seg_s", form=form, widths=[4, 4, 8, 8, 8, 8], **extra)
        model.save_pretrained(tmp_path / form)
        config_file = tmp_path / form / "config.json"
        saved = json.loads(config_file.read_text())
        for key in ("dilation", "residual", "masa_zero_init", "decoder_projection"):  # as before the residual form
            del saved["config"][key]
        config_file.write_text(json.dumps(saved))
        loaded = nexnet.from_pretrained(tmp_path / form)
        assert loaded.config["form"] == form and dilations(loaded) == [2] * 6 and residual_levels(loaded) == []
        x = torch.rand(1, 3, 32, 32)
        torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize("residual", [False, True])
def test_conv_masa_adds_its_input_to_the_double_conv_when_residual(residual):
    torch.manual_seed(0)
    block = ConvMaSA(4, 4, masa=True, head_dim=4, residual=residual).eval()
    x = torch.randn(2, 4, 6, 6)
    h = block.conv(x)
    expected = block.attention(x + h if residual else h)
    torch.testing.assert_close(block(x), expected)
    with pytest.raises(ValueError, match="a residual ConvMaSA needs as many channels in as out, got 3, 4"):
        ConvMaSA(3, 4, residual=True)


def test_residual_skip_keeps_the_convolutions_dtype_under_autocast():
    torch.manual_seed(0)
    model = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8], masa=False)
    x = torch.rand(1, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        skip = model.encoder[0](x)[1]  # T-PEN hands over float32; the DoubleConv gives bfloat16
    assert skip.dtype == torch.bfloat16


def attending(model) -> list[MaSA]:
    return [b.conv_masa.attention for b in model.encoder if isinstance(b.conv_masa.attention, MaSA)]


def test_masa_zero_init_reaches_every_attending_level():
    model = nexnet.create_model("nexnet_seg_s", masa_zero_init=True)
    attentions = attending(model)
    assert len(attentions) == 4 and all(not a.proj.weight.any() and not a.proj.bias.any() for a in attentions)
    assert all(a.proj.weight.any() for a in attending(nexnet.create_model("nexnet_seg_s")))


def test_masa_zero_init_starts_as_the_identity_and_learns_away_from_it():
    torch.manual_seed(0)
    attention = MaSA(8, head_dim=4, zero_init=True)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    y = attention(x)
    torch.testing.assert_close(y, x)
    target = torch.randn_like(y)
    optimizer = torch.optim.SGD(attention.parameters(), lr=0.1)
    for _ in range(2):  # the first step moves the projection, the second the layers before it
        optimizer.zero_grad()
        ((attention(x) - target) ** 2).mean().backward()
        optimizer.step()
    assert attention.qkv.weight.grad.abs().sum() > 0
    assert not torch.allclose(attention(x), x)
    assert not torch.equal(MaSA(8, head_dim=4)(x), x)


def test_decoder_projection_maps_each_coarser_map_to_the_levels_width():
    torch.manual_seed(0)
    widths = [4, 6, 8, 8, 10, 12]
    model = nexnet.create_model("nexnet_seg_s", widths=widths, decoder_projection=True, masa=False).eval()
    assert [(p.in_channels, p.out_channels, p.kernel_size) for p in model.projections] == [
        (12, 10, (1, 1)), (10, 8, (1, 1)), (8, 8, (1, 1)), (8, 6, (1, 1)), (6, 4, (1, 1))]  # fmt: skip
    assert [block[0].in_channels for block in model.decoder] == [20, 16, 16, 12, 8]
    assert nexnet.create_model("nexnet_seg_s", form="residual").projections is None
    # The forward pass, written out: d_j = DoubleConv(cat(up2(P_j d_{j+1}), s_j)).
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        skips, h = [], x
        for level, block in enumerate(model.encoder):
            h, skip = block(model.pool(h) if level else h)
            skips.append(skip)
        d = skips.pop()
        for projection, block in zip(model.projections, model.decoder):
            skip = skips.pop()
            up = torch.nn.functional.interpolate(projection(d), size=skip.shape[-2:], mode="bilinear")
            d = block(torch.cat([up, skip], 1))
        torch.testing.assert_close(model(x), model.head(d))


@pytest.mark.parametrize("form, extra", [("residual", {}), ("custom", {"tpen_init": "linear", "encoder_chain": "conv_masa",
                                                                     "masa_from": 2})])  # fmt: skip
def test_checkpoint_saved_before_decoder_projection_loads_without_it(tmp_path, form, extra):
    model = nexnet.create_model("nexnet_seg_s", form=form, widths=[4, 4, 8, 8, 8, 8], **extra)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["config"]["decoder_projection"]
    config_file.write_text(json.dumps(saved))
    loaded = nexnet.from_pretrained(tmp_path)
    assert loaded.projections is None and loaded.config["form"] == form
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(NexnetError, match="decoder_projection must be true or false, got 'yes'"):
        nexnet.create_model("nexnet_seg_s", decoder_projection="yes")
