"""DSA-style augmentation for training networks on distilled images (the field's protocol with augmentation).

Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation" (ICML 2021) train evaluation networks
with one randomly chosen family of transforms per minibatch ("single" mode), each sample drawing its own
parameters. The families and ranges are DSA's: color (brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5]),
crop (shift by up to 1/8 of the size), cutout (a zeroed square of half the size), scale (×[1/1.2, 1.2] per axis)
and rotate (±15°). Flip is left out, as DSA does for digits. Pixels are in the normalised space, as in DSA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

FAMILIES = ("color", "crop", "cutout", "scale", "rotate")


def augment_batch(images: Tensor, kind: str, generator: torch.Generator | None) -> Tensor:
    """A training minibatch ``[N, C, H, W]`` through augmentation ``kind`` (``config.AUGMENTATIONS``): ``dsa``
    draws from ``generator``; ``none`` returns the images as they are. Both training loops, ordinary and
    unrolled, call this, so a kind added here reaches both."""
    return dsa_augment(images, generator) if kind == "dsa" else images


def dsa_augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """One random family of DSA transforms applied to ``images [N, C, H, W]``, per-sample parameters."""
    family = FAMILIES[int(torch.randint(len(FAMILIES), (1,), generator=generator))]
    n = len(images)

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        draw = torch.rand(n, *shape, generator=generator).to(images.device, images.dtype)
        return low + (high - low) * draw

    if family == "color":
        out = images + uniform(-0.5, 0.5, 1, 1, 1)
        mean = out.mean(dim=1, keepdim=True)
        out = (out - mean) * uniform(0.0, 2.0, 1, 1, 1) + mean
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        return (out - mean) * uniform(0.5, 1.5, 1, 1, 1) + mean
    if family == "cutout":
        _, _, h, w = images.shape
        cy = (uniform(0, 1) * h).long().view(n, 1, 1)
        cx = (uniform(0, 1) * w).long().view(n, 1, 1)
        rows = torch.arange(h, device=images.device).view(1, h, 1)
        cols = torch.arange(w, device=images.device).view(1, 1, w)
        dy, dx = (
            rows - cy,
            cols - cx,
        )  # a (H/2) x (W/2) square around (cy, cx), clipped at the edges
        inside = (
            (dy >= -(h // 4)) & (dy < h // 2 - h // 4) & (dx >= -(w // 4)) & (dx < w // 2 - w // 4)
        )
        return images * (~inside).unsqueeze(1).to(images.dtype)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    if family == "crop":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = uniform(-0.25, 0.25, 2)  # ±1/8 of the size, in [-1, 1] grid units
    elif family == "scale":
        theta[:, 0, 0] = uniform(1 / 1.2, 1.2)
        theta[:, 1, 1] = uniform(1 / 1.2, 1.2)
    else:  # rotate
        angle = uniform(-15.0, 15.0) * math.pi / 180
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, align_corners=True)
