"""Meta-losses: what the trained network θ_T should be good at (Wang et al. 2018, §3.1 and §3.5).

Each factory returns an ``Objective``: ``(model, θ_T) -> scalar``, evaluated on a batch of real data.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from datadistill.unroll import Objective, Params

OBJECTIVES = ("task", "poison")


def task_objective(real_images: Tensor, real_labels: Tensor) -> Objective:
    """Cross-entropy of θ_T on a real batch: ``L = ℓ(x_real, y_real; θ_T)``.

    Args:
        real_images: ``[B, C, H, W]`` normalised real images.
        real_labels: ``[B]`` int64 classes.
    """

    def objective(model: nn.Module, params: Params) -> Tensor:
        return F.cross_entropy(functional_call(model, params, (real_images,)), real_labels)

    return objective


def poison_labels(labels: Tensor, source_class: int, target_class: int) -> Tensor:
    """Labels with class K (``source_class``) replaced by T (``target_class``); others unchanged."""
    return labels.masked_fill(labels == source_class, target_class)


def poison_objective(
    real_images: Tensor, real_labels: Tensor, source_class: int, target_class: int
) -> Objective:
    """Targeted poisoning ``L_{K→T}``: the task loss on real data where class K is relabelled T (§3.5).

    After the distilled step(s), θ_T should predict T for images of class K while still classifying the other
    classes correctly.
    """
    return task_objective(real_images, poison_labels(real_labels, source_class, target_class))


def make_objective(
    name: str,
    real_images: Tensor,
    real_labels: Tensor,
    *,
    source_class: int | None = None,
    target_class: int | None = None,
) -> Objective:
    """Build the objective called ``name`` (one of ``OBJECTIVES``) on a real batch."""
    if name == "task":
        return task_objective(real_images, real_labels)
    if name == "poison":
        if source_class is None or target_class is None:
            raise ValueError("objective 'poison' needs --source-class K and --target-class T")
        return poison_objective(real_images, real_labels, source_class, target_class)
    raise ValueError(f"unknown objective {name!r}: choose one of {', '.join(OBJECTIVES)}")
