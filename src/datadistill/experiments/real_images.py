"""Real-image helpers the baselines share: a fit / validation cut of the training split, k-means centroids, the
baseline image sets (random, k-means, class means) laid out as replay steps, and 1-nearest-neighbour accuracy.

Randomness comes in as an argument (a generator, or scikit-learn's integer ``random_state``), so each
experiment keeps its own seeding and its published numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from datadistill.initial_state import (
    kmeans,
)  # where a distillation's --init-images kmeans draws them too


def split_train(num_train: int, val_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Cut the training split into disjoint *fit* and *validation* index sets.

    Args:
        num_train: images in the training split.
        val_size: validation images wanted; capped at a fifth of the split so the fit part stays large (and
            at least one).
        generator: draws the permutation.

    Returns:
        ``(fit [N − V], val [V])`` sorted int64 indices into the training split, disjoint, together all of it.
    """
    v = max(1, min(val_size, num_train // 5))
    perm = torch.randperm(num_train, generator=generator)
    return perm[v:].sort().values, perm[:v].sort().values


def arrange(per_class: Tensor, steps: int, images_per_class: int) -> tuple[Tensor, Tensor]:
    """Lay out per-class images as a replay schedule in class order.

    Args:
        per_class: ``[K_cls, S·K, C, H, W]``: for each class, its S·K images.
        steps: S.
        images_per_class: K.

    Returns:
        images ``[S, K_cls·K, C, H, W]`` and labels ``[S, K_cls·K]``; column c of every step holds class
        ``c // K`` (classes 0…K_cls−1, each repeated K times consecutively, as ``distill`` lays them out).
    """
    num_classes, total, *shape = per_class.shape
    assert total == steps * images_per_class, (total, steps, images_per_class)
    x = per_class.reshape(num_classes, steps, images_per_class, *shape)  # [K_cls, S, K, C, H, W]
    x = x.transpose(0, 1).reshape(steps, num_classes * images_per_class, *shape)  # [S, n, C, H, W]
    labels = (
        torch.arange(num_classes).repeat_interleave(images_per_class).repeat(steps, 1)
    )  # [S, n]
    return x.contiguous(), labels


def _class_indices(labels: Tensor, num_classes: int, need: int) -> list[Tensor]:
    pools = [(labels == c).nonzero().squeeze(1) for c in range(num_classes)]
    for c, pool in enumerate(pools):
        if len(pool) < need:
            raise ValueError(
                f"class {c} has only {len(pool)} training images but the budget needs {need} "
                "(steps × images per class): lower --steps or --images-per-class"
            )
    return pools


def random_real(
    images: Tensor, labels: Tensor, num_classes: int, steps: int, images_per_class: int, generator
) -> Tensor:
    """``[K_cls, S·K, C, H, W]``: S·K distinct random real images of each class (drawn from ``images``)."""
    need = steps * images_per_class
    pools = _class_indices(labels, num_classes, need)
    picks = [pool[torch.randperm(len(pool), generator=generator)[:need]] for pool in pools]
    return images[torch.stack(picks)]  # [K_cls, S·K, C, H, W]


def kmeans_centroids(
    images: Tensor, labels: Tensor, num_classes: int, steps: int, images_per_class: int, seed: int
) -> Tensor:
    """``[K_cls, S·K, C, H, W]``: k-means++ centroids of each class's images (scikit-learn, S·K per class).

    Centroids within a class are ordered by cluster size, largest first, so step 0 holds the most typical
    images (the assignment to steps is otherwise arbitrary).
    """
    need = steps * images_per_class
    pools = _class_indices(labels, num_classes, need)
    return torch.stack([kmeans(images[pool], need, seed, largest_first=True) for pool in pools])


def average_real(
    images: Tensor, labels: Tensor, num_classes: int, steps: int, images_per_class: int
) -> Tensor:
    """``[K_cls, S·K, C, H, W]``: each class's mean image, repeated at every position."""
    pools = _class_indices(labels, num_classes, 1)
    means = torch.stack([images[pool].mean(dim=0) for pool in pools])  # [K_cls, C, H, W]
    return means[:, None].expand(-1, steps * images_per_class, *means.shape[1:]).clone()


def nearest_neighbour_accuracy(
    ref_images: Tensor, ref_labels: Tensor, images: Tensor, labels: Tensor, batch_size: int = 2000
) -> float:
    """Accuracy (%) of a 1-NN classifier (Euclidean, in normalised pixel space).

    Args:
        ref_images: ``[M, C, H, W]`` the classifier's images; ``ref_labels``: ``[M]``.
        images: ``[N, C, H, W]`` images to classify; ``labels``: ``[N]``.
    """
    ref = ref_images.reshape(len(ref_images), -1)  # [M, D]
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].reshape(-1, ref.shape[1])  # [B, D]
        nearest = torch.cdist(x, ref).argmin(dim=1)  # [B]
        correct += int((ref_labels[nearest] == labels[i : i + batch_size]).sum())
    return 100.0 * correct / max(len(images), 1)
