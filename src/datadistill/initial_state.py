"""Where a distillation starts: the pixels, labels and raw step sizes, and the outer Adam over them."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datadistill.artifacts import DistilledData
from datadistill.checkpoint import DistillState
from datadistill.config import INIT_IMAGE_KINDS, DistillConfig
from datadistill.formation import encode
from datadistill.memory import check_fits_in_memory
from datadistill.seeds import generator

LABEL_LOGIT_SCALE = 4.4  # learned labels start at softmax ≈ 0.9 on the class for 10 classes (ln 81)


def inverse_softplus(y: float) -> float:
    """x with softplus(x) = y (the raw parameter of a learned step size y > 0)."""
    return y + math.log(-math.expm1(-y))


def initial_images(cfg: DistillConfig, train, cover: Tensor) -> Tensor:
    """``[S, n, C, H, W]`` starting pixels: N(0, 1) noise (the paper), random real images or k-means centroids.

    ``cover`` is ``[n, K]`` multi-hot: the classes image j stands for. A real-image start averages one random
    training image of each of its classes (one class unless there are fewer images than classes); with
    ``--formation F`` each of the image's F² tiles starts from its own such image (``formation.encode``).
    ``kmeans`` takes, in place of the random images, the centroids of k-means over each class's training
    images, k = every start the class needs (S · its images · F²), largest cluster first: typical images of
    every mode of the class (DREAM, Liu et al., ICCV 2023, starts from such representatives).
    """
    gen = generator(cfg.seed, "images")
    if cfg.init_images == "noise":
        return torch.randn(cfg.steps, len(cover), *train.image_shape, generator=gen)
    tiles = cfg.formation**2
    shape = (cfg.steps, tiles, *train.image_shape)
    centroids = _class_centroids(cfg, train, cover, tiles) if cfg.init_images == "kmeans" else None
    taken = [0] * cover.shape[1]  # per class: how many of its images have their centroids
    starts = torch.zeros(cfg.steps, len(cover), *shape[1:])
    for j, row in enumerate(cover):
        members = row.nonzero().squeeze(1).tolist()
        for c in members:
            if centroids is not None:
                starts[:, j] += centroids[c][taken[c]]
                taken[c] += 1
                continue
            pool = (train.labels == c).nonzero().squeeze(1)
            drawn = pool[torch.randint(len(pool), (cfg.steps, tiles), generator=gen)]
            starts[:, j] += train.take(drawn.flatten()).view(shape)
        starts[:, j] /= len(members)
    stored = encode(starts.flatten(0, 2), cfg.formation)  # [S·n, C, H, W]
    return stored.view(cfg.steps, len(cover), *train.image_shape)


def _class_centroids(cfg: DistillConfig, train, cover: Tensor, tiles: int) -> dict[int, Tensor]:
    """``{c: [uses_c, S, F², C, H, W]}``: k-means centroids of class c's training images, largest cluster
    first, one per start the images covering c need."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    uses = cover.sum(dim=0).tolist()  # images standing for each class
    centroids = {}
    # One thread: every torchrun rank must find the same centroids, and thread counts move float sums.
    with threadpool_limits(limits=1):
        for c, n in enumerate(uses):
            if n:
                pool = (train.labels == c).nonzero().squeeze(1)
                need = int(n) * cfg.steps * tiles
                found = kmeans(train.take(pool), need, cfg.seed, largest_first=True)
                centroids[c] = found.view(int(n), cfg.steps, tiles, *train.image_shape)
    return centroids


def kmeans(images: Tensor, k: int, seed: int, *, largest_first: bool = False) -> Tensor:
    """``[k, C, H, W]``: k-means++ centroids of ``images [N, C, H, W]`` (scikit-learn, 3 restarts).

    Args:
        images: the images to cluster (N ≥ k).
        k: centroids wanted.
        seed: scikit-learn's ``random_state``.
        largest_first: order the centroids by cluster size, largest first (else scikit-learn's order).
    """
    from sklearn.cluster import (
        KMeans,  # sklearn is slow to import; only k-means starts and baselines need it
    )

    x = images.reshape(len(images), -1).double().numpy()  # [N, D]
    km = KMeans(n_clusters=k, init="k-means++", n_init=3, random_state=seed).fit(x)
    centres = km.cluster_centers_
    if largest_first:
        centres = centres[np.argsort(-np.bincount(km.labels_, minlength=k), kind="stable")]
    return torch.from_numpy(centres).float().reshape(k, *images.shape[1:])


def class_cover(per_step: int, images_per_class: int, num_classes: int) -> Tensor:
    """``[n, K]`` multi-hot: which classes each of the n images of a step stands for.

    ``images_per_class`` images per class in class order; with fewer images than classes (learned labels
    only), image j covers classes j, j + n, j + 2n, … so that every class has an image from the start.
    """
    if per_step >= num_classes:
        classes = (torch.arange(per_step) // images_per_class) % num_classes
        return F.one_hot(classes, num_classes)
    return F.one_hot(torch.arange(num_classes) % per_step, per_step).T.contiguous()


def starting_set(cfg: DistillConfig, train) -> DistilledData | None:
    """With ``--init-images FOLDER``: the distilled set in FOLDER (``images`` ``[S, n, C, H, W]``, ``lrs``
    ``[S·E]``), to go on distilling it (a released set, or a finished run: its pixels and learned step sizes are the
    start, ``--lr-init`` is not used); None for ``noise`` / ``real``.

    Raises:
        ValueError: the set does not fit this run (data, classes, shape, formation, labels or step count).
    """
    if cfg.init_images in INIT_IMAGE_KINDS:
        return None
    flag = f"--init-images {cfg.init_images}"
    try:
        start = DistilledData.load(cfg.init_images)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{flag}: {err}") from None
    per_step = cfg.images_per_step or cfg.images_per_class * train.num_classes
    shape = (cfg.steps, per_step, *train.image_shape)
    m = start.manifest
    ours = (
        list(train.class_names),
        [round(v, 6) for v in train.mean],
        [round(v, 6) for v in train.std],
    )
    theirs = (
        list(m.get("class_names") or []),
        [round(v, 6) for v in m.get("mean") or []],
        [round(v, 6) for v in m.get("std") or []],
    )
    if ours != theirs:
        raise ValueError(
            f"{flag}: that set was distilled from other data ({m.get('dataset')}: other classes or "
            f"normalisation) than --dataset {cfg.dataset}; start from a set of the same data"
        )
    if tuple(start.images.shape) != shape or start.formation != cfg.formation:
        raise ValueError(
            f"{flag}: that set has images of shape {tuple(start.images.shape)} (formation "
            f"{start.formation}), this run asks for {shape} (formation {cfg.formation}); match its "
            f"--steps, --images-per-class and --formation (its manifest has them)"
        )
    cover = class_cover(
        per_step, cfg.images_per_class if cfg.images_per_step is None else 1, train.num_classes
    )
    if start.soft_labels or not torch.equal(start.labels, cover.argmax(dim=1).repeat(cfg.steps, 1)):
        raise ValueError(
            f"{flag}: only sets with hard labels in class order can be distilled further "
            "(10 per class: 0…0, 1…1, …); that one has learned or reordered labels"
        )
    if len(start.lrs) != cfg.steps * cfg.epochs:
        raise ValueError(
            f"{flag}: that set has {len(start.lrs)} step sizes, this run learns --steps x --epochs = "
            f"{cfg.steps * cfg.epochs}; match its --epochs"
        )
    return start


def initial_state(
    cfg: DistillConfig,
    train,
    device: torch.device,
    images: Tensor | None,
    lrs: Tensor | None = None,
) -> DistillState:
    """The state a run starts from: ``images`` ``[S, n, C, H, W]`` (None: ``--init-images`` noise or real
    ones), class labels (or label logits), step sizes ``lrs`` ``[S·E]`` (None: ``--lr-init`` each) as raw
    softplus parameters, and the outer Adam over what is learned."""
    num_classes = train.num_classes
    per_step = cfg.images_per_step or cfg.images_per_class * num_classes
    repeat = cfg.images_per_class if cfg.images_per_step is None else 1
    shape = (cfg.steps, per_step * cfg.formation**2, *train.image_shape)  # as training decodes them
    # The pixels, their gradient, Adam's two moments and the decoded copies the inner training reads.
    check_fits_in_memory(
        6 * math.prod(shape) * 4,
        f"{shape[0]} steps x {shape[1]} images of {'x'.join(map(str, shape[2:]))}",
        "choose fewer --images-per-class (or --steps, --formation)",
    )
    cover = class_cover(per_step, repeat, num_classes)  # [n, K]
    if images is None:
        images = initial_images(cfg, train, cover)
    elif images.shape != (cfg.steps, per_step, *train.image_shape):
        raise ValueError(
            f"initial images have shape {tuple(images.shape)}, expected "
            f"{(cfg.steps, per_step, *train.image_shape)} (steps, images per step, C, H, W)"
        )
    if cfg.learn_labels and cfg.label_targets == "free":
        # The target vector itself: one-hot, or split evenly over the classes an image covers.
        labels = (cover.float() / cover.sum(1, keepdim=True)).repeat(cfg.steps, 1, 1)  # [S, n, K]
    elif cfg.learn_labels:
        # Equal logits on the classes an image covers: softmax ≈ 0.9 on one class, ≈ 0.47 each on two.
        labels = cover.float().repeat(cfg.steps, 1, 1) * LABEL_LOGIT_SCALE  # [S, n, K]
    else:
        labels = cover.argmax(dim=1).repeat(cfg.steps, 1)  # [S, n]
    if lrs is None:
        raw = torch.full((cfg.steps * cfg.epochs,), inverse_softplus(cfg.lr_init))
    else:  # the inverse of softplus, elementwise
        raw = lrs + torch.log(-torch.expm1(-lrs))
    images = images.detach().clone().to(device).requires_grad_(cfg.learn == "all")
    raw = raw.to(device).requires_grad_(cfg.learn_lr)
    labels = labels.to(device).requires_grad_(cfg.learn_labels)
    learned = [t for t in (images, raw) if t.requires_grad]
    own_label_lr = cfg.learn_labels and cfg.label_lr is not None
    if (
        cfg.learn_labels and not own_label_lr
    ):  # one group, as checkpoints from before --label-lr hold
        learned.append(labels)
    groups = [{"params": learned}] if learned else []
    if own_label_lr:  # its own group, whose lr keeps its ratio to --lr under the schedule
        groups.append({"params": [labels], "lr": cfg.label_lr, "lr_scale": cfg.label_lr / cfg.lr})
    opt = torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    return DistillState(images, labels, raw, opt, 0, [], cfg.label_targets)


def check_real_images(cfg: DistillConfig, train) -> None:
    """With ``--init-images real`` (or ``kmeans``) a class with fewer training images than
    ``--images-per-class`` would start several distilled images from the same real one (k-means cannot find
    more centroids than points): refuse it instead of repeating silently."""
    if cfg.init_images not in ("real", "kmeans") or cfg.images_per_step is not None:
        return
    counts = torch.bincount(train.labels, minlength=train.num_classes)
    smallest = int(counts.argmin())
    needed = cfg.images_per_class * cfg.formation**2  # every tile starts from its own image
    if counts[smallest] < needed:
        tiles = (
            f" x {cfg.formation**2} tiles (--formation {cfg.formation})"
            if cfg.formation > 1
            else ""
        )
        raise ValueError(
            f"--images-per-class {cfg.images_per_class}{tiles} with --init-images {cfg.init_images} needs {needed} "
            f"training images of every class, but class {train.class_names[smallest]!r} of "
            f"{cfg.dataset} has {int(counts[smallest])}; use at most --images-per-class "
            f"{int(counts.min()) // cfg.formation**2}, or --init-images noise"
        )
