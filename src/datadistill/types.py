"""The small shared types of the package: parameter dicts, the meta-objective signature, the schedule, and a
stored set flattened into one training set (``flatten_set``).

They live apart from ``unroll`` so that the storage layer (``artifacts``) and ``inits`` can name them without
importing the training code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]  # dict(model.named_parameters())
Objective = Callable[[nn.Module, Params], Tensor]  # (model, θ_T) -> scalar meta-loss


@dataclass
class Steps:
    """The distilled training schedule that ``unroll`` replays.

    Attributes:
        images: ``[steps, per_step, C, H, W]`` distilled images, in normalised pixel space.
        labels: ``[steps, per_step]`` int64 class labels, or ``[steps, per_step, K]`` float soft targets,
            used as they are: the inner loss is ``−Σ_k y_k log softmax(f)_k`` (a target need not sum to one;
            how learned labels become targets is ``artifacts.label_targets``).
        lrs: ``[steps * epochs]`` positive step sizes, one per GD update.
    """

    images: Tensor
    labels: Tensor
    lrs: Tensor

    @property
    def num_steps(self) -> int:
        return self.images.shape[0]

    @property
    def num_updates(self) -> int:
        return self.lrs.shape[0]

    def to(self, device: torch.device | str) -> Steps:
        """The same schedule with its images, labels and lrs on ``device``."""
        return Steps(self.images.to(device), self.labels.to(device), self.lrs.to(device))


def flatten_set(images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """A stored set as one detached training set: images ``[..., C, H, W]`` → ``[N, C, H, W]``, targets
    ``[...]`` → ``[N]`` classes or ``[..., K]`` → ``[N, K]`` soft targets."""
    x = images.detach().reshape(-1, *images.shape[-3:])
    y = targets.detach()
    return x, y.reshape(-1, y.shape[-1]) if y.is_floating_point() else y.reshape(-1)
