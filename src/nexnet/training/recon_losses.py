"""Reconstruction losses for SSL pretraining: SSIM, PSNR and an optional VGG16 perceptual term."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NexnetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03.

    Borders are reflection-padded so every pixel has a full window (torchmetrics' convention).
    Shapes: ``(B, C, H, W)`` -> ``(B,)``.
    """
    c = x.shape[1]
    w = gaussian_window(size, sigma).to(x)[None, None].repeat(c, 1, 1, 1)
    pad = size // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy = (blur(x * x) - mx**2).clamp(min=0), (blur(y * y) - my**2).clamp(min=0)
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB. Shapes: ``(B, C, H, W)`` -> ``(B,)``."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(data_range**2 / mse)


VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
PERCEPTUAL_TAPS = (3, 8, 15, 22)  # relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's indexing


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk up to relu4_3, with torchvision's ``features.N`` parameter names."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in VGG16_LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers[: PERCEPTUAL_TAPS[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in PERCEPTUAL_TAPS:
                taps.append(x)
        return taps

    @classmethod
    def from_file(cls, path: str | Path) -> VGG16Features:
        """Load ImageNet weights: a ``.safetensors`` file, or a torchvision ``.pth`` state dict read with
        ``torch.load(weights_only=True)``, which refuses anything but tensors."""
        path = Path(path)
        if not path.is_file():
            raise NexnetError(f"--vgg-weights {path}: file does not exist")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(path)
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # many formats, many errors: one line
            raise NexnetError(f"--vgg-weights {path}: cannot be read as a state dict ({e})") from None
        model = cls()
        wanted = {k for k in model.state_dict() if k.startswith("features.")}
        state = {k: v for k, v in state.items() if k in wanted}
        missing = sorted(wanted - set(state))
        if missing:
            raise NexnetError(f"--vgg-weights {path}: not a VGG16 state dict (missing {missing[:2]})")
        model.load_state_dict(state, strict=False)
        return model.eval().requires_grad_(False)


class ReconstructionLoss(nn.Module):
    """``0.7 MSE + 0.2 (1 - SSIM) + 0.1 perceptual``; without VGG weights the first two are rescaled to sum to 1."""

    def __init__(self, vgg: VGG16Features | None = None) -> None:
        super().__init__()
        self.vgg = vgg
        total = 1.0 if vgg is not None else 0.9
        self.w_mse, self.w_ssim, self.w_perc = 0.7 / total, 0.2 / total, (0.1 if vgg is not None else 0.0)

    def forward(self, recon: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        recon, clean = recon.float(), clean.float()
        loss = self.w_mse * F.mse_loss(recon, clean) + self.w_ssim * (1 - ssim(recon, clean).mean())
        if self.vgg is not None:
            loss = loss + self.w_perc * sum(F.mse_loss(a, b) for a, b in zip(self.vgg(recon), self.vgg(clean)))
        return loss
