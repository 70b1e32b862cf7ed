"""Real-image helpers the baselines share: a fit / validation cut of the training split, and k-means centroids.

Randomness comes in as an argument (a generator, or scikit-learn's integer ``random_state``), so each
experiment keeps its own seeding and its published numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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


def kmeans(images: Tensor, k: int, seed: int, *, largest_first: bool = False) -> Tensor:
    """``[k, C, H, W]``: k-means++ centroids of ``images [N, C, H, W]`` (scikit-learn, 3 restarts).

    Args:
        images: the images to cluster (N ≥ k).
        k: centroids wanted.
        seed: scikit-learn's ``random_state``.
        largest_first: order the centroids by cluster size, largest first (else scikit-learn's order).
    """
    from sklearn.cluster import (
        KMeans,  # sklearn is slow to import; only the k-means baselines need it
    )

    x = images.reshape(len(images), -1).double().numpy()  # [N, D]
    km = KMeans(n_clusters=k, init="k-means++", n_init=3, random_state=seed).fit(x)
    centres = km.cluster_centers_
    if largest_first:
        centres = centres[np.argsort(-np.bincount(km.labels_, minlength=k), kind="stable")]
    return torch.from_numpy(centres).float().reshape(k, *images.shape[1:])
