"""ResNet-18 for small images, the field's cross-architecture network (DC, DSA, MTT).

He et al. 2016's four stages of two basic blocks (64, 128, 256, 512 channels), with the small-image stem of the
dataset-distillation literature: one 3x3 conv at stride 1 and no max pool, so 28x28 digits keep 28x28 in the first
stage. Normalisation is instance norm (``GroupNorm(C, C)``) instead of BatchNorm, because every model here is
called functionally without buffers (see ``datadistill.models``); say so when comparing with BatchNorm numbers.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ImageClassifier
from .registry import register_model

__all__ = ["ResNet18"]


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(cout, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(cout, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(cout, cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@register_model("resnet18")
class ResNet18(ImageClassifier):
    """ResNet-18 (small-image stem, instance norm): conv3x3 → 4 stages x 2 basic blocks → avg pool → fc.

    Args:
        in_shape: Per-example input shape ``(C, H, W)``; at least 9x9 (instance norm needs 2x2 pixels after three stride-2 stages).
        num_classes: Number of output logits.
    """

    arch: ClassVar[str] = "resnet18"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes)
        self._require_min_size(
            9, "instance norm needs at least 2x2 pixels after three stride-2 stages"
        )
        c = self.in_shape[0]
        layers: list[nn.Module] = [
            nn.Conv2d(c, 64, 3, padding=1, bias=False),  # [N, 64, H, W]
            nn.GroupNorm(64, 64),
            nn.ReLU(),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        layers.append(nn.AdaptiveAvgPool2d(1))  # [N, 512, 1, 1]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, self.num_classes)
