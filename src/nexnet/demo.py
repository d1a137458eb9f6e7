"""``nexnet demo``: a run that needs no data."""

from __future__ import annotations

import torch

from .models import create_model
from .profile import count_flops, count_parameters


def run_demo(out: str = "demo", seconds: float = 120) -> int:
    """Build ``nexnet_seg_s``, run it on a synthetic image and print its size."""
    torch.manual_seed(0)
    model = create_model("nexnet_seg_s").eval()
    image = torch.rand(1, 3, 224, 224)  # synthetic input, not a medical image
    with torch.no_grad():
        logits = model(image)
    print(f"nexnet_seg_s: {count_parameters(model) / 1e6:.2f}M parameters, "
          f"{count_flops(model, image) / 2e9:.2f} GMACs at 224x224")  # fmt: skip
    print(f"synthetic input {tuple(image.shape)} -> logits {tuple(logits.shape)}")
    return 0
