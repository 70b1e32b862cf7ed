"""Multi-formation: every stored image holds F×F smaller training images (Kim et al., ICML 2022, "IDC").

A distilled set's budget is its stored pixels. With formation factor F a stored image ``[C, H, W]`` is cut into
an F×F grid of tiles ``[C, H/F, W/F]`` and every tile is upsampled back to ``[C, H, W]`` (bilinear), so the
same storage trains a network on F² times as many images at 1/F the resolution:

    decode(s)[F·i + j] = up_F(s[:, i·H/F : (i+1)·H/F, j·W/F : (j+1)·W/F])        i, j = 0 … F−1

Every decoded image keeps its stored image's label. ``encode`` is the starting point of a real-image start:
F² real images, each downsampled (antialiased bilinear) into one tile. Both are differentiable, so the
meta-gradient reaches the stored pixels through ``decode``. F = 1 returns the images unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from datadistill.types import Steps, flatten_set


def check_factor(factor: int, image_shape: tuple[int, ...]) -> None:
    """Refuse a factor (a positive whole number, checked with the other settings) that does not divide the
    images' height and width."""
    height, width = image_shape[-2:]
    if height % factor or width % factor:
        raise ValueError(
            f"--formation {factor} must divide the image size {height}x{width}: use a divisor of both "
            "(e.g. 2 for 28x28), or --resize the data"
        )


def decode(images: Tensor, factor: int) -> Tensor:
    """Stored ``[M, C, H, W]`` → training images ``[M·F², C, H, W]``; image m's tiles are rows m·F² … (m+1)·F²−1,
    row-major over the grid."""
    if factor == 1:
        return images
    m, c, h, w = images.shape
    th, tw = h // factor, w // factor
    tiles = images.reshape(m, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(m * factor * factor, c, th, tw)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def decode_targets(targets: Tensor, factor: int) -> Tensor:
    """Labels ``[M]`` or soft targets ``[M, K]`` of the stored images → those of ``decode``'s ``M·F²`` images."""
    return targets if factor == 1 else targets.repeat_interleave(factor * factor, dim=0)


def decode_set(images: Tensor, targets: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """A stored set (images ``[..., C, H, W]``, targets ``[...]`` or ``[..., K]``) as one detached training set:
    ``[N·F², C, H, W]`` decoded images and their ``[N·F²]`` classes or ``[N·F², K]`` soft targets."""
    flat_images, flat_targets = flatten_set(images, targets)
    return decode(flat_images, factor), decode_targets(flat_targets, factor)


def decode_steps(steps: Steps, factor: int) -> Steps:
    """The replay protocol's schedule on decoded images: every step's ``[n, C, H, W]`` stored images →
    ``[n·F², C, H, W]`` (``decode``) and its labels ``[n]`` or targets ``[n, K]`` with them; the lrs as they
    are. Differentiable in the images and targets (no detach), so a meta-gradient can flow back through it."""
    if factor == 1:
        return steps
    s, n = steps.images.shape[:2]
    images = decode(steps.images.flatten(0, 1), factor)
    labels = decode_targets(steps.labels.flatten(0, 1), factor)
    return Steps(
        images.reshape(s, n * factor * factor, *images.shape[1:]),
        labels.reshape(s, n * factor * factor, *labels.shape[1:]),
        steps.lrs,
    )


def encode(images: Tensor, factor: int) -> Tensor:
    """Training-size images ``[M·F², C, H, W]`` → stored ``[M, C, H, W]``: every group of F² consecutive images
    downsampled into one stored image's tiles (the inverse of ``decode`` up to the resampling)."""
    if factor == 1:
        return images
    n, c, h, w = images.shape
    if n % (factor * factor):
        raise ValueError(f"{n} images do not fill stored images of {factor}x{factor} tiles")
    th, tw = h // factor, w // factor
    small = F.interpolate(
        images, size=(th, tw), mode="bilinear", antialias=True, align_corners=False
    )
    grid = small.reshape(n // factor**2, factor, factor, c, th, tw).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n // factor**2, c, h, w)
