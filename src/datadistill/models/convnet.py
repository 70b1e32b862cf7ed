"""ConvNet-D, the standard network of later dataset-distillation work (DC, DSA, DM, MTT).

Each block is conv3x3 → instance norm → ReLU → 2x2 average pool. Instance norm is written as
``GroupNorm(width, width)`` (one group per channel): it normalises each example's channels
with that example's own statistics and keeps no running buffers, unlike ``InstanceNorm2d``
with ``track_running_stats`` or BatchNorm.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import ImageClassifier
from .registry import register_model

__all__ = ["ConvNet", "ConvNet32", "ConvNet64"]


@register_model("convnet")
class ConvNet(ImageClassifier):
    """ConvNet-3: depth x [conv3x3(width) → instance norm → ReLU → avgpool2] → linear.

    Args:
        in_shape: Per-example input shape ``(C, H, W)``; H and W must be at least
            ``2 ** depth`` so that every pool has a pixel to keep.
        num_classes: Number of output logits.
        width: Channels of every conv layer (128 in the literature).
        depth: Number of conv blocks (3 in the literature).
    """

    arch: ClassVar[str] = "convnet"

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        *,
        width: int = 128,
        depth: int = 3,
    ) -> None:
        super().__init__(in_shape, num_classes)
        if width < 1 or depth < 1:
            raise ValueError(f"convnet needs width >= 1 and depth >= 1, got {width=}, {depth=}")
        self._require_min_size(2**depth, f"{depth} halving pools")
        self.width, self.depth = width, depth
        c, h, w = self.in_shape
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [
                nn.Conv2d(c if i == 0 else width, width, 3, padding=1),  # [N, width, h, w]
                nn.GroupNorm(width, width, affine=True),  # instance norm, no buffers
                nn.ReLU(),
                nn.AvgPool2d(2),  # [N, width, h/2, w/2]
            ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * (h >> depth) * (w >> depth), self.num_classes)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, width={self.width}, depth={self.depth}"


@register_model("convnet-32")
class ConvNet32(ConvNet):
    """ConvNet-3 of width 32: the literature's network at a quarter of the channels (cheap to unroll on CPUs)."""

    arch: ClassVar[str] = "convnet-32"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes, width=32)


@register_model("convnet-64")
class ConvNet64(ConvNet):
    """ConvNet-3 of width 64: half the literature's channels."""

    arch: ClassVar[str] = "convnet-64"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes, width=64)
