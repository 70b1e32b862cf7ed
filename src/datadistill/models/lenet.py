"""LeNet, the paper's network for MNIST, USPS and SVHN (Wang et al. 2018, Sec. 4)."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import ImageClassifier
from .registry import register_model

__all__ = ["LeNet"]


@register_model("lenet")
class LeNet(ImageClassifier):
    """LeNet: conv6 5x5 → pool → conv16 5x5 → pool → fc120 → fc84 → fc (ReLU), any channels.

    The first conv pads by 2 so 28x28 digits keep their size; on 32x32 inputs the flattened
    feature is 16x6x6 instead of 16x5x5 (it is computed from ``in_shape``). The smallest input
    is 12x12: below that the second 5x5 conv and pool leave no pixels.

    Args:
        in_shape: Per-example input shape ``(C, H, W)``.
        num_classes: Number of output logits.
    """

    arch: ClassVar[str] = "lenet"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes)
        self._require_min_size(12, "two 2x2 pools around an unpadded 5x5 conv")
        c, h, w = self.in_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2),  # [N, 6, H, W]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [N, 6, H/2, W/2]
            nn.Conv2d(6, 16, 5),  # [N, 16, H/2-4, W/2-4]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [N, 16, (H/2-4)/2, (W/2-4)/2]
        )
        flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, self.num_classes),
        )
