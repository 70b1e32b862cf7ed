"""AlexCifarNet, the paper's network for CIFAR-10 (Wang et al. 2018, Sec. 4).

Layer for layer as in the reference code (SsnL/dataset-distillation), which follows the
cuda-convnet CIFAR-10 model: two 5x5 convs of 64 channels with overlapping 3x3/2 max pools and
local response normalisation, then fc384 → fc192 → fc. LRN normalises across channels of the
current example only and has no state, so it is safe in the unrolled inner loop.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import ImageClassifier
from .registry import register_model

__all__ = ["AlexCifarNet"]


def _pool_out(n: int) -> int:
    """Output length of MaxPool2d(kernel 3, stride 2, padding 1) on ``n`` inputs."""
    return (n + 2 * 1 - 3) // 2 + 1


@register_model("alexcifarnet")
class AlexCifarNet(ImageClassifier):
    """AlexCifarNet: conv64 5x5 → pool → LRN → conv64 5x5 → LRN → pool → fc384 → fc192 → fc.

    The pools are padded, so every input size of at least 1x1 is accepted (32x32 gives the
    reference 64x8x8 = 4096 features).

    Args:
        in_shape: Per-example input shape ``(C, H, W)``.
        num_classes: Number of output logits.
    """

    arch: ClassVar[str] = "alexcifarnet"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes)
        c, h, w = self.in_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 64, 5, padding=2),  # [N, 64, H, W]
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),  # [N, 64, ceil(H/2), ceil(W/2)]
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(),
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0),
            nn.MaxPool2d(3, stride=2, padding=1),  # [N, 64, ceil(H/4), ceil(W/4)]
        )
        flat = 64 * _pool_out(_pool_out(h)) * _pool_out(_pool_out(w))
        self.classifier = nn.Sequential(
            nn.Linear(flat, 384),
            nn.ReLU(),
            nn.Linear(384, 192),
            nn.ReLU(),
            nn.Linear(192, self.num_classes),
        )
