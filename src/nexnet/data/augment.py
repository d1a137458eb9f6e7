"""Batched augmentation as tensor ops on the training device, seeded and deterministic."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Flips, rotation and colour jitter applied to a whole batch at once.

    Geometry is applied identically to image and mask; the mask is resampled bilinearly and
    thresholded at 0.5, so it stays binary. Colour jitter touches the image only. Random draws
    come from a CPU generator, so a seed gives the same batch on any device.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rotate_degrees: float = 15.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (B, 3, H, W)`` float in [0, 1], ``masks (B, 1, H, W)`` float 0/1."""
        b, dev = images.shape[0], images.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return (torch.rand(b, generator=generator) * (high - low) + low).to(dev)

        def coin(p: float) -> torch.Tensor:
            return (torch.rand(b, generator=generator) < p).to(dev).view(b, 1, 1, 1)

        h, v = coin(self.hflip), coin(self.vflip)
        images = torch.where(h, images.flip(3), images)
        masks = torch.where(h, masks.flip(3), masks)
        images = torch.where(v, images.flip(2), images)
        masks = torch.where(v, masks.flip(2), masks)
        if self.rotate_degrees > 0:
            angle = uniform(-self.rotate_degrees, self.rotate_degrees) * (math.pi / 180)
            cos, sin = angle.cos(), angle.sin()
            zero = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
            images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            masks = (masks > 0.5).to(images.dtype)
        images = self.jitter(images, uniform)
        return images.clamp_(0, 1), masks

    def jitter(self, images: torch.Tensor, uniform) -> torch.Tensor:  # noqa: ANN001
        b = images.shape[0]
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
        if self.brightness:
            images = images * uniform(1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1)
        if self.contrast:
            grey_mean = (images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True).mean((2, 3), keepdim=True)
            c = uniform(1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1)
            images = (images - grey_mean) * c + grey_mean
        if self.saturation:
            grey = (images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
            s = uniform(1 - self.saturation, 1 + self.saturation).view(b, 1, 1, 1)
            images = (images - grey) * s + grey
        return images
