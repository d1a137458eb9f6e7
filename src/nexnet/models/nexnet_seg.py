"""NExNet Seg (Reyes-Angulo and Paheding, CVPRW 2025): a U-Net with T-PEN and Manhattan self-attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .base import SegmentationModel
from .blocks import DoubleConv, LevelOptions, NExBlock
from .input_checks import check_image_batch
from .registry import register_config_upgrade, register_model
from .ssl_autoencoder import SSLEncoder
from .upsample import upsample_bilinear

PAPER_WIDTHS = (32, 64, 128, 256, 256, 512)

# A form fixes the settings that make NExNet Seg learn (docs/training.md): "paper" is the published
# network; "revised" starts T-PEN at the plain neuron and chains the encoder through the Conv-MaSA
# branch; "lean" is "revised" with MaSA only from level 3 (1/4 resolution, where RMT's first stage
# attends) down; "residual", the default, is "lean" with an undilated first convolution per level
# and a residual DoubleConv on each skip: it learns faster than UNet per step. A published form never
# changes; keyword arguments given explicitly override its values.

# What a form or a custom config saved before a setting existed had: the paper's values.
BEFORE_SETTING = {
    "masa_from": 1, "dilation": 2, "residual": False, "masa_zero_init": False, "decoder_projection": False,
}  # fmt: skip
# Each form is the one before it with the changes docs/training.md measured.
FORMS: dict[str, dict[str, Any]] = {"paper": {"tpen_init": "log1p", "encoder_chain": "nex", **BEFORE_SETTING}}
FORMS["revised"] = {**FORMS["paper"], "tpen_init": "linear", "encoder_chain": "conv_masa"}
FORMS["lean"] = {**FORMS["revised"], "masa_from": 3}
FORMS["residual"] = {**FORMS["lean"], "dilation": 1, "residual": True}
DEFAULT_FORM = "residual"


def resolve_form(form: str, **given: Any) -> dict[str, Any]:
    """``FORMS[form]`` updated by the ``given`` values that are not None; ``"custom"`` needs them all
    but those in :data:`BEFORE_SETTING`, which take the values they had before they existed."""
    given = {k: v for k, v in given.items() if v is not None}
    if form == "custom":
        given = {**BEFORE_SETTING, **given}
        missing = [k for k in FORMS[DEFAULT_FORM] if k not in given]
        if missing:
            raise ValueError(f"NExNet Seg form 'custom' needs {', '.join(missing)}")
        return given
    if form not in FORMS:
        raise ValueError(f"NExNet Seg form must be one of {', '.join(FORMS)} or custom, got {form!r}")
    return {**FORMS[form], **given}


def form_name(form: str, chosen: dict[str, Any]) -> str:
    """``form`` if ``chosen`` is exactly that form's settings, else ``"custom"``: a saved config never
    names a form its network is not."""
    return form if FORMS.get(form) == chosen else "custom"


class NExNetSeg(SegmentationModel):
    """Six NEx encoder levels, five 2x2 max-pools and a bilinear U-Net decoder.

    Encoder level ``i``: ``x_i = TPEN(ReLU(Conv3x3_dilation(BN(in))))``, skip ``s_i = MaSA(DoubleConv(x_i))``
    or, with ``residual``, ``MaSA(x_i + DoubleConv(x_i))`` (MaSA the identity above level
    ``masa_from``); ``x_i`` (form "paper") or ``s_i`` (the other
    forms) is max-pooled into level ``i + 1``. The bottleneck is ``s_6`` at 1/32 resolution,
    concatenated with an SSL embedding of ``ssl_channels`` channels when ``ssl_channels > 0``.
    Decoder ``d_j = DoubleConv(cat(up2(d_{j+1}), s_j))`` (``up2(P_j d_{j+1})`` with
    ``decoder_projection``), then Dropout2d and a 1x1 head.

    Args:
        form: ``"residual"`` (default), ``"lean"``, ``"revised"`` or ``"paper"``: the values of
            ``tpen_init``, ``encoder_chain``, ``masa_from``, ``dilation``, ``residual`` and
            ``masa_zero_init`` when they are not given (see :data:`FORMS`). A network that matches
            none records ``"custom"``.
        widths: channels of the six encoder levels.
        in_channels: image channels.
        num_classes: output channels (1 for binary segmentation: logits).
        tpen: T-PEN after each encoder convolution (``False``: order 1, frozen, the plain neuron).
        order: T-PEN expansion order ``K``.
        tpen_clip: T-PEN inputs are clamped to this magnitude (None: never); see docs/model.md.
        tpen_init: T-PEN's starting coefficients, ``"log1p"`` (paper) or ``"linear"``.
        encoder_chain: what goes down the encoder from each level, ``"nex"`` (paper: the T-PEN
            output) or ``"conv_masa"`` (the skip branch's output); see :class:`NExBlock`.
        masa: Manhattan self-attention on each skip (``False``: identity).
        masa_from: the first encoder level (1 to 6) with MaSA; the levels above it have none.
        dilation: dilation of each level's first 3x3 convolution (the paper's 2, or 1).
        residual: the skip is ``MaSA(x_i + DoubleConv(x_i))`` instead of ``MaSA(DoubleConv(x_i))``.
        masa_zero_init: each MaSA block starts as the identity (its output projection at zero).
        decoder_projection: each decoder level first maps the coarser map to its own width with a 1x1
            convolution, ``d_j = DoubleConv(cat(up2(P_j d_{j+1}), s_j))``, as UNet's transposed
            convolution does; ``P_j`` commutes with the bilinear upsampling, so it runs at the coarse
            resolution.
        gamma: MaSA decay, a float in (0, 1) or ``"rmt"``.
        head_dim: MaSA channels per head.
        masa_mode: ``"decomposed"`` or ``"full"``.
        dropout: Dropout2d probability before the head.
        ssl_channels: channels of an SSL embedding concatenated at the bottleneck (0: none); with
            ``ssl=True`` it defaults to the autoencoder's 1024.
        ssl: build the SSL autoencoder's encoder inside the model and feed its embedding to the bottleneck.
        freeze_ssl: keep that encoder's weights fixed (and its BatchNorm in eval mode).

    Shapes: ``x`` ``(B, in_channels, H, W)`` with H, W multiples of 32; ``ssl_embedding``
    ``(B, ssl_channels, H/32, W/32)``; output ``(B, num_classes, H, W)`` logits.
    """

    def __init__(
        self,
        widths: Sequence[int] = PAPER_WIDTHS,
        in_channels: int = 3,
        num_classes: int = 1,
        tpen: bool = True,
        order: int = 3,
        masa: bool = True,
        gamma: float | str = 0.8,
        head_dim: int = 32,
        masa_mode: str = "decomposed",
        dropout: float = 0.2,
        ssl_channels: int = 0,
        tpen_clip: float | None = 8.0,
        ssl: bool = False,
        freeze_ssl: bool = False,
        form: str = DEFAULT_FORM,
        tpen_init: str | None = None,
        encoder_chain: str | None = None,
        masa_from: int | None = None,
        dilation: int | None = None,
        residual: bool | None = None,
        masa_zero_init: bool | None = None,
        decoder_projection: bool | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        chosen = _checked_form(widths, form, tpen_init=tpen_init, encoder_chain=encoder_chain, masa_from=masa_from,
                               dilation=dilation, residual=residual, masa_zero_init=masa_zero_init,
                               decoder_projection=decoder_projection)  # fmt: skip
        self.config = dict(
            widths=widths, in_channels=in_channels, num_classes=num_classes, tpen=tpen,
            order=order, masa=masa, gamma=gamma, head_dim=head_dim, masa_mode=masa_mode,
            dropout=dropout, ssl_channels=ssl_channels, tpen_clip=tpen_clip, ssl=ssl, freeze_ssl=freeze_ssl,
            form=form_name(form, chosen), **chosen,
        )  # fmt: skip
        self.ssl_encoder, ssl_channels = _ssl_encoder(ssl, ssl_channels, in_channels, freeze_ssl)
        self.freeze_ssl = freeze_ssl and ssl
        self.in_channels, self.ssl_channels = in_channels, ssl_channels
        self.size_multiple = 2 ** (len(widths) - 1)
        # Levels: what every encoder level shares, with MaSA from level masa_from down.
        level = LevelOptions(
            tpen=tpen, order=order, masa=masa, gamma=gamma, head_dim=head_dim, masa_mode=masa_mode,
            tpen_clip=tpen_clip, tpen_init=chosen["tpen_init"], chain=chosen["encoder_chain"],
            dilation=chosen["dilation"], residual=chosen["residual"], masa_zero_init=chosen["masa_zero_init"],
        )  # fmt: skip
        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(
            NExBlock(c_in, c_out, replace(level, masa=masa and i + 1 >= chosen["masa_from"]))
            for i, (c_in, c_out) in enumerate(zip(ins, widths))
        )
        self.pool = nn.MaxPool2d(2)
        # Decoder: bottom up, each level on the coarser map and its skip; then the head.
        self.decoder, self.projections = _decoder(widths, widths[-1] + ssl_channels, chosen["decoder_projection"])
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor, ssl_embedding: torch.Tensor | None = None) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "NExNetSeg")
        x_in = x
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.pool(x)
            x, skip = block(x)
            skips.append(skip)
        d = skips.pop()
        if ssl_embedding is None and self.ssl_encoder is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_ssl):
                ssl_embedding = self.ssl_encoder(x_in)
        if self.ssl_channels:
            if ssl_embedding is None:
                raise ValueError(f"NExNetSeg was built with ssl_channels={self.ssl_channels}: "
                                 "pass ssl_embedding")  # fmt: skip
            d = torch.cat([d, ssl_embedding.to(d.dtype)], dim=1)
        for j, block in enumerate(self.decoder):
            skip = skips.pop()
            if self.projections is not None:
                d = self.projections[j](d)
            up = upsample_bilinear(d, size=skip.shape[-2:])
            d = block(torch.cat([up, skip], dim=1))
        return self.head(self.dropout(d))

    def train(self, mode: bool = True) -> NExNetSeg:
        super().train(mode)
        if self.freeze_ssl and self.ssl_encoder is not None:
            self.ssl_encoder.eval()  # frozen: its BatchNorm statistics stay as pretrained
        return self


def _checked_form(widths: list[int], form: str, **given: Any) -> dict[str, Any]:
    """The form's settings with the ``given`` ones, each checked: ValueError names a bad one."""
    if len(widths) != 6:
        raise ValueError(f"NExNetSeg needs 6 widths, got {len(widths)}: {widths}")
    chosen = resolve_form(form, **given)
    first = chosen["masa_from"]
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= len(widths):
        raise ValueError(f"masa_from must be a level from 1 to {len(widths)}, got {first!r}")
    for key in ("residual", "masa_zero_init", "decoder_projection"):
        if not isinstance(chosen[key], bool):
            raise ValueError(f"{key} must be true or false, got {chosen[key]!r}")
    return chosen


def _ssl_encoder(ssl: bool, channels: int, in_channels: int, freeze: bool) -> tuple[SSLEncoder | None, int]:
    """With ``ssl``, the SSL autoencoder's encoder (frozen with ``freeze``) and its embedding's channels."""
    if not ssl:
        return None, channels
    encoder = SSLEncoder(in_channels)
    channels = channels or encoder.out_channels
    if channels != encoder.out_channels:
        raise ValueError(f"ssl=True gives {encoder.out_channels} channels, not {channels}")
    if freeze:
        encoder.requires_grad_(False)
    return encoder, channels


def _decoder(widths: list[int], below: int, projection: bool) -> tuple[nn.ModuleList, nn.ModuleList | None]:
    """The decoder levels, bottom up, for a bottleneck of ``below`` channels; with ``projection``, the
    1x1 convolutions before each (None without: checkpoints without them keep their keys)."""
    decoder, projections = nn.ModuleList(), nn.ModuleList() if projection else None
    for width in reversed(widths[:-1]):
        if projections is not None:
            projections.append(nn.Conv2d(below, width, 1))
            below = width
        decoder.append(DoubleConv(below + width, width))
        below = width
    return decoder, projections


def _before_forms(config: dict) -> dict:
    """Checkpoints saved before forms existed hold the paper's network. (Those saved before
    a key of :data:`BEFORE_SETTING` existed need nothing: their forms, custom included, resolve it to
    the value they were built with.)"""
    return config if "form" in config else {**config, "form": "paper"}


@register_model
def nexnet_seg(**kwargs) -> NExNetSeg:
    """NExNet Seg at the paper's widths 32-64-128-256-256-512 (``form="paper"``: the published network)."""
    return NExNetSeg(**{"widths": PAPER_WIDTHS, **kwargs})


@register_model
def nexnet_seg_s(**kwargs) -> NExNetSeg:
    """Half widths (16-32-64-128-128-256), for CPU work."""
    return NExNetSeg(**{"widths": tuple(w // 2 for w in PAPER_WIDTHS), **kwargs})


@register_model
def nexnet_seg_ssl(**kwargs) -> NExNetSeg:
    """The paper's NExNet Seg with the SSL autoencoder's encoder fused at the bottleneck."""
    return NExNetSeg(**{"widths": PAPER_WIDTHS, "ssl": True, **kwargs})


for _name in ("nexnet_seg", "nexnet_seg_s", "nexnet_seg_ssl"):
    register_config_upgrade(_name, _before_forms)
