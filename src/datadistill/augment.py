"""Augmentation for training networks on distilled images (the field's protocol with augmentation).

Two kinds, each as its source trains its evaluation networks, one fresh draw per minibatch:

``dsa``: Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation" (ICML 2021) train evaluation networks
with one randomly chosen family of transforms per minibatch ("single" mode), each sample drawing its own
parameters. The families and ranges are DSA's: color (brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5]),
crop (shift by up to 1/8 of the size), cutout (a zeroed square of half the size), scale (×[1/1.2, 1.2] per axis)
and rotate (±15°). Flip is left out, as DSA does for digits. Pixels are in the normalised space, as in DSA.

``dc``: the augmentation behind DC's MNIST numbers (Zhao, Mopuri & Bilen, ICLR 2021; ``get_daparam`` and
``augment`` in github.com/VICO-UoE/DatasetCondensation, strategy ``crop_scale_rotate``): every image gets one of
crop (padded by 4 pixels with the batch's channel mean and cut back at a random offset, a shift of −4 … 3 pixels
per axis), scale (resized with nearest neighbours to ⌊s·H⌋ x ⌊s'·W⌋, s, s' ~ U[0.8, 1.2), centred, zeros around,
cut back to H x W) and rotate (by an integer angle in [−45°, 45°) about the centre, the batch mean around). DC
rotates with scipy's cubic spline; here it is bilinear (``grid_sample``), the one difference. Every transform is
differentiable in the pixels, so it also serves distillation's ``--inner-augment``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

FAMILIES = ("color", "crop", "cutout", "scale", "rotate")
DC_FAMILIES = ("crop", "scale", "rotate")
DC_CROP = 4  # pixels of padding, so shifts of −4 … 3
DC_SCALE = 0.2  # sizes ⌊U[0.8, 1.2) · H⌋
DC_ROTATE = 45  # integer degrees in [−45, 45)


def augment_batch(images: Tensor, kind: str, generator: torch.Generator | None) -> Tensor:
    """A training minibatch ``[N, C, H, W]`` through augmentation ``kind`` (``config.AUGMENTATIONS``): ``dsa``
    and ``dc`` draw from ``generator``; ``none`` returns the images as they are. Both training loops, ordinary
    and unrolled, call this, so a kind added here reaches both."""
    if kind == "dsa":
        return dsa_augment(images, generator)
    if kind == "dc":
        return dc_augment(images, generator)
    return images


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


@dataclass(frozen=True)
class DcDraw:
    """One minibatch's random draws for ``dc_augment``, one entry per image.

    Attributes:
        family: ``[N]`` int64 index into ``DC_FAMILIES``.
        shift: ``[N, 2]`` int64 crop shifts (rows, columns) in −DC_CROP … DC_CROP − 1.
        size: ``[N, 2]`` int64 scaled heights and widths.
        angle: ``[N]`` int64 rotations in degrees.
    """

    family: Tensor
    shift: Tensor
    size: Tensor
    angle: Tensor


def draw_dc(n: int, height: int, width: int, generator: torch.Generator) -> DcDraw:
    """Draw ``dc_augment``'s parameters for ``n`` images of ``height x width`` (all drawn for every image)."""
    family = torch.randint(len(DC_FAMILIES), (n,), generator=generator)
    shift = torch.randint(2 * DC_CROP, (n, 2), generator=generator) - DC_CROP
    factor = (
        1 - DC_SCALE + 2 * DC_SCALE * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    )
    size = (factor * torch.tensor([height, width], dtype=torch.float64)).long()
    angle = torch.randint(-DC_ROTATE, DC_ROTATE, (n,), generator=generator)
    return DcDraw(family=family, shift=shift, size=size, angle=angle)


def dc_augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """DC's ``crop_scale_rotate`` augmentation of ``images [N, C, H, W]``: one transform per image."""
    _, _, h, w = images.shape
    return apply_dc(images, draw_dc(len(images), h, w, generator))


def apply_dc(images: Tensor, draw: DcDraw, fill: Tensor | None = None) -> Tensor:
    """``images [N, C, H, W]`` with image i cropped, scaled or rotated as ``draw`` says.

    ``fill [C]`` is what a crop shifts in (a rotation: its mean); by default the batch's channel means, taken
    before any transform and as constants, as DC does.
    """
    n, _, h, w = images.shape
    device = images.device
    channel_mean = images.detach().mean(dim=(0, 2, 3)) if fill is None else fill.to(images)
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)

    shift = draw.shift.to(device)
    cropped = _gather(images, rows + shift[:, :1], cols + shift[:, 1:], channel_mean)

    size = draw.size.to(device)
    side = torch.maximum(size.max(dim=1).values, torch.tensor(max(h, w), device=device))  # [N]
    # DC pastes the resized image at ⌊(m − h')/2⌋ of an m x m canvas and cuts H x W at ⌊(m − H)/2⌋; a pixel
    # of the output is pixel (y + ⌊(m − H)/2⌋ − ⌊(m − h')/2⌋) of the resized image, which nearest-neighbour
    # resizing takes from row ⌊that · H / h'⌋ of the original (as F.interpolate's "nearest").
    scaled_rows = rows + ((side - h) // 2 - (side - size[:, 0]) // 2)[:, None]  # [N, H]
    scaled_cols = cols + ((side - w) // 2 - (side - size[:, 1]) // 2)[:, None]  # [N, W]
    scaled = _gather(
        images,
        _nearest_source(scaled_rows, size[:, :1], h),
        _nearest_source(scaled_cols, size[:, 1:], w),
        torch.zeros_like(channel_mean),
    )

    rotated = _rotated(images, draw.angle.to(device, images.dtype), channel_mean.mean())
    family = draw.family.to(device).view(n, 1, 1, 1)
    return torch.where(family == 0, cropped, torch.where(family == 1, scaled, rotated))


def _rotated(images: Tensor, degrees: Tensor, fill: Tensor) -> Tensor:
    """``images [N, C, H, W]`` turned about their centres by ``degrees [N]`` (bilinear), ``fill`` around.
    An image one pixel high or wide has no plane to turn in and is left as it is."""
    _, _, h, w = images.shape
    if h == 1 or w == 1:
        return images
    radians = degrees * math.pi / 180
    theta = torch.zeros(len(images), 2, 3, dtype=images.dtype, device=images.device)
    # A rotation in pixels written in grid_sample's [-1, 1] coordinates (different scales on non-square images).
    aspect = (h - 1) / (w - 1)
    theta[:, 0, 0], theta[:, 0, 1] = radians.cos(), -radians.sin() * aspect
    theta[:, 1, 0], theta[:, 1, 1] = radians.sin() / aspect, radians.cos()
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images - fill, grid, align_corners=True) + fill


def _nearest_source(positions: Tensor, resized: Tensor, original: int) -> Tensor:
    """Rows (or columns) of the original that nearest-neighbour resizing to ``resized`` puts at ``positions``
    ``[N, L]``; −1 where a position falls outside the resized image."""
    # In float32, as F.interpolate computes it: 6 · (28 / 24) is 6.9999996 there, so row 6, not 7.
    scale = (
        torch.tensor(float(original), dtype=torch.float32, device=positions.device)
        / resized.float()
    )
    source = torch.floor(positions.float() * scale).long()
    inside = (positions >= 0) & (positions < resized)
    return torch.where(inside, source.clamp(max=original - 1), torch.full_like(source, -1))


def _gather(images: Tensor, rows: Tensor, cols: Tensor, fill: Tensor) -> Tensor:
    """``out[i, :, y, x] = images[i, :, rows[i, y], cols[i, x]]``, ``fill [C]`` where an index is off the image.

    Args:
        images: ``[N, C, H, W]``.
        rows: ``[N, H']`` source rows.
        cols: ``[N, W']`` source columns.
        fill: ``[C]`` value outside.
    """
    n, _, h, w = images.shape
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    picked = images[
        torch.arange(n, device=images.device)[:, None, None],
        :,
        rows.clamp(0, h - 1)[:, :, None],
        cols.clamp(0, w - 1)[:, None, :],
    ]  # [N, H', W', C]
    picked = picked.permute(0, 3, 1, 2)
    return torch.where(inside[:, None], picked, fill.to(images.dtype)[None, :, None, None])
