"""Common base for the image classifiers: stored input shape, input checks, features → classifier.

Every model is a plain ``nn.Module`` with parameters only (no buffers), made of a ``features``
stack and a ``classifier`` stack, so that the unrolled inner loop can call it as
``torch.func.functional_call(model, params, (x,))`` with any parameter dict, and
``torch.func.vmap`` can run many parameter sets over the same data.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["ImageClassifier", "InputTooSmall", "tested_logits"]


class InputTooSmall(ValueError):
    """An architecture built for images smaller than it can take. The message suggests ``--resize``, the
    fix where data is loaded; a command that cannot resize (``evaluate`` of a stored set) words its own from
    ``arch`` and ``min_hw``."""

    def __init__(self, message: str, arch: str, min_hw: int) -> None:
        super().__init__(message)
        self.arch = arch
        self.min_hw = min_hw


def _whole(value: object) -> bool:
    """An integer (Python's or numpy's / torch's integer scalars), not a bool or a float like 2.7."""
    return not isinstance(value, bool) and hasattr(value, "__index__")


def _as_shape(in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    sizes = tuple(in_shape) if isinstance(in_shape, tuple | list) else ()
    if len(sizes) != 3 or not all(_whole(s) and s >= 1 for s in sizes):
        raise ValueError(
            f"in_shape must be (channels, height, width) with positive whole sizes, got {in_shape!r}"
        )
    return tuple(int(s) for s in sizes)  # type: ignore[return-value]


def tested_logits(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Logits ``[N, K]`` of ``model`` with ``params`` on ``x [N, C, H, W]`` as a trained network is tested:
    in eval mode, so that a user's dropout is off (training passes run in the module's own mode, train).

    The built-in models have no layer that differs between the modes; the module's mode is restored after.
    """
    was_training = model.training
    model.train(False)
    try:
        return functional_call(model, params, (x,))
    finally:
        model.train(was_training)


class ImageClassifier(nn.Module):
    """Base class: ``logits = classifier(flatten(features(x)))`` with checked input shapes.

    Subclasses set ``arch`` (their registry name, used in messages), fill ``self.features`` and
    ``self.classifier`` and may call :meth:`_require_min_size` in ``__init__``.

    Attributes:
        in_shape: Per-example input shape ``(C, H, W)`` the model was built for.
        num_classes: Number of output logits.
    """

    arch: ClassVar[str] = "model"

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.in_shape = _as_shape(in_shape)
        if not _whole(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.features: nn.Module = nn.Identity()
        self.classifier: nn.Module = nn.Identity()

    def _require_min_size(self, min_hw: int, reason: str) -> None:
        """Raise a ValueError in ``__init__`` if H or W is below ``min_hw``.

        Checking at build time gives one clear message instead of a conv error deep in the
        first forward pass (or, worse, in the middle of a distillation run).
        """
        _, h, w = self.in_shape
        if h < min_hw or w < min_hw:
            raise InputTooSmall(
                f"{self.arch} needs inputs of at least {min_hw}x{min_hw} pixels ({reason}) but "
                f"in_shape is {self.in_shape}: resize the data (e.g. --resize 28) or choose a "
                "model without this limit (mlp, linear)",
                self.arch,
                min_hw,
            )

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError unless ``x`` is a batch ``[N, *in_shape]``.

        Only ``x.shape`` is inspected, so this works under ``functional_call`` and inside
        ``torch.func.vmap`` (where ``x.shape`` is the per-sample shape).
        """
        if x.dim() != 4:
            raise ValueError(
                f"{self.arch} expects a batch of images [N, C, H, W] = [N, "
                f"{', '.join(map(str, self.in_shape))}] but got a tensor of shape "
                f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) for one image"
            )
        got = tuple(x.shape[-3:])
        if got != self.in_shape:
            c, h, w = self.in_shape
            if got[1:] == (h, w):
                fix = f"build it for {got[0]} channels or convert the data with channels={c}"
            else:
                size = h if h == w else (h, w)
                fix = f"build it for in_shape={got} or resize the data with resize={size}"
            raise ValueError(
                f"{self.arch} was built for inputs of shape {self.in_shape} but got {got}: {fix}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images.

        Args:
            x: Images ``[N, C, H, W]`` with ``(C, H, W) == in_shape``.

        Returns:
            Logits ``[N, num_classes]``.
        """
        self.check_input(x)
        h = self.features(x)  # [N, ...]
        return self.classifier(h.flatten(1))  # [N, num_classes]

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, num_classes={self.num_classes}"
