"""Fully connected models: an MLP and a linear (softmax regression) classifier.

The linear model is the paper's analysis case (Sec. 3.4: one GD step reaches the optimum from
every init only with at least D distilled points) and a fast sanity check for the inner loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from torch import nn

from .base import ImageClassifier
from .registry import register_model

__all__ = ["MLP", "LinearClassifier"]


@register_model("mlp")
class MLP(ImageClassifier):
    """MLP: flatten → [Linear → ReLU] per hidden size → Linear.

    Args:
        in_shape: Per-example input shape ``(C, H, W)``; any size.
        num_classes: Number of output logits.
        hidden: Sizes of the hidden layers; one int is one hidden layer.
    """

    arch: ClassVar[str] = "mlp"

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        *,
        hidden: int | Sequence[int] = (256, 256),
    ) -> None:
        super().__init__(in_shape, num_classes)
        # build_model("mlp", ..., hidden=64) means one layer of 64, not a TypeError from tuple(64).
        if isinstance(hidden, int):
            hidden = (hidden,)
        sizes_given = tuple(hidden) if isinstance(hidden, tuple | list) else (hidden,)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes_given):
            raise ValueError(
                f"mlp hidden sizes must be positive whole numbers, e.g. hidden=(256, 256), got {hidden!r}"
            )
        self.hidden = tuple(sizes_given)
        sizes = (math.prod(self.in_shape), *self.hidden)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], self.num_classes))
        # `forward` flattens the features ([N, C*H*W]) before the classifier.
        self.classifier = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, hidden={self.hidden}"


@register_model("linear")
class LinearClassifier(ImageClassifier):
    """Linear: flatten → Linear (with bias), i.e. multinomial logistic regression.

    Args:
        in_shape: Per-example input shape ``(C, H, W)``; any size.
        num_classes: Number of output logits.
    """

    arch: ClassVar[str] = "linear"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(in_shape, num_classes)
        self.classifier = nn.Linear(math.prod(self.in_shape), self.num_classes)
