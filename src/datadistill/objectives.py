"""Meta-losses: what the trained network θ_T should be good at (Wang et al. 2018, §3.1 and §3.5).

Each factory returns an ``Objective``: ``(model, θ_T) -> scalar``, evaluated on a batch of real data with the
network as it is tested (eval mode: a user's dropout is off), since θ_T is judged by its test accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datadistill.models.base import tested_logits
from datadistill.types import Objective, Params

OBJECTIVES = ("task", "poison")


def task_objective(real_images: Tensor, real_labels: Tensor) -> Objective:
    """Cross-entropy of θ_T on a real batch: ``L = ℓ(x_real, y_real; θ_T)``.

    Args:
        real_images: ``[B, C, H, W]`` normalised real images.
        real_labels: ``[B]`` int64 classes.
    """

    def objective(model: nn.Module, params: Params) -> Tensor:
        return F.cross_entropy(tested_logits(model, params, real_images), real_labels)

    return objective


def poison_labels(labels: Tensor, source_class: int, target_class: int) -> Tensor:
    """Labels with class K (``source_class``) replaced by T (``target_class``); others unchanged."""
    return labels.masked_fill(labels == source_class, target_class)


def poison_objective(
    real_images: Tensor,
    real_labels: Tensor,
    source_class: int,
    target_class: int,
    source_weight: float = 1.0,
) -> Objective:
    """Targeted poisoning ``L_{K→T}``: the task loss on real data where class K is relabelled T (§3.5).

    After the distilled step(s), θ_T should predict T for images of class K while still classifying the other
    classes correctly. ``source_weight`` w weighs the class-K images w times the others in a weighted mean
    (w = 1: the paper's plain mean). Class K is about a tenth of a batch, so at w = 1 the loss mostly asks
    the other classes to stay intact; a larger w trades some of that for success.
    """
    targets = poison_labels(real_labels, source_class, target_class)
    if source_weight == 1.0:
        return task_objective(real_images, targets)
    weights = torch.where(real_labels == source_class, source_weight, 1.0).to(real_images.dtype)

    def objective(model: nn.Module, params: Params) -> Tensor:
        logits = tested_logits(model, params, real_images)
        per_image = F.cross_entropy(logits, targets, reduction="none")
        return (weights * per_image).sum() / weights.sum()

    return objective


def make_objective(
    name: str,
    real_images: Tensor,
    real_labels: Tensor,
    *,
    source_class: int | None = None,
    target_class: int | None = None,
    source_weight: float = 1.0,
) -> Objective:
    """Build the objective called ``name`` (one of ``OBJECTIVES``) on a real batch."""
    if name == "task":
        return task_objective(real_images, real_labels)
    if name == "poison":
        if source_class is None or target_class is None:
            raise ValueError("objective 'poison' needs --source-class K and --target-class T")
        return poison_objective(real_images, real_labels, source_class, target_class, source_weight)
    raise ValueError(f"unknown objective {name!r}: choose one of {', '.join(OBJECTIVES)}")
