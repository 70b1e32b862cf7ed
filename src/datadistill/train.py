"""Ordinary training of a network (no meta-gradient): the loops every experiment and evaluation uses.

- ``train_adam``: one network, minibatch Adam with a cosine-decayed lr (full-data baselines, pre-training);
- ``train_networks``: G networks from their own inits and batch orders, one after the other or vmapped
  together (pools of pre-trained networks);
- ``train_as_dataset`` with a ``FieldRecipe``: the field's protocol, minibatch SGD with momentum on the
  distilled images as an ordinary training set.

The differentiable inner loops that distillation back-propagates through live in ``unroll`` and
``minibatch_unroll``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from datadistill.augment import augment_batch
from datadistill.config import (
    AUGMENTATIONS,
    PRETRAIN_BETAS,
    PRETRAIN_METHODS,
    PretrainConfig,
    positive_int,
)
from datadistill.seeds import generator as _derived_generator
from datadistill.seeds import global_rng
from datadistill.types import Params, flatten_set
from datadistill.unroll import inner_loss

# Pre-training's fast recipe (config.PretrainConfig holds the command's defaults).
DEFAULT_LR = PretrainConfig.lr
DEFAULT_BETAS = PRETRAIN_BETAS
DEFAULT_BATCH_SIZE = PretrainConfig.batch_size
METHODS = PRETRAIN_METHODS


def _shuffle_generator(seed: int) -> torch.Generator:
    """The generator of network ``seed``'s mini-batch order: one ``randperm`` per epoch."""
    return _derived_generator(seed, "pretrain-shuffle")


def cosine(step: int, total: int) -> float:
    """lr multiplier: cosine decay from 1 to 0 over ``total`` steps (no warm-up; Adam on small nets)."""
    return 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))


def train_networks(
    model: nn.Module,
    inits: Sequence[Params],
    images: Tensor,
    labels: Tensor,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    betas: tuple[float, float] = DEFAULT_BETAS,
    method: str = "loop",
    on_step: Callable[[int, int], None] | None = None,
) -> list[Params]:
    """Train G networks on one data set, each from its own init and with its own batch order.

    Network g starts from ``inits[g]`` and sees the training set in the order of ``_shuffle_generator(seeds[g])``
    (a fresh permutation each epoch; the last batch of an epoch may be smaller). The update is Adam with a
    per-step cosine-decayed lr:

        lr_t = lr · ½ (1 + cos(π t / T)),   T = epochs · ceil(N / batch_size)

    ``method="vmap"`` stacks the G parameter sets (``[G, ...]``) and runs one vmapped forward/backward per step,
    each network on its own mini-batch; the summed loss has, for each network's parameters, exactly that
    network's gradient, and Adam acts elementwise, so this equals ``method="loop"`` (one network after the
    other) up to the rounding of the batched kernels (``tests/test_pretrain.py`` checks it in float64).

    Args:
        model: the architecture, called through ``functional_call``; its own parameters are not used.
        inits: G parameter dicts θ_0 (same names and shapes), e.g. Xavier draws or pre-trained networks.
        images: ``[N, C, H, W]`` normalised training images, on the device to train on.
        labels: ``[N]`` int64 classes, same device.
        seeds: G seeds, one per network, for the batch order.
        epochs: passes over the training set.
        batch_size: images per network per step.
        lr: peak Adam lr.
        betas: Adam betas.
        method: ``"loop"`` (default: measured fastest for LeNet on CPU, see the module docstring) or ``"vmap"``.
        on_step: called as ``on_step(done, total)`` after every update of any network (progress reporting).

    Returns:
        G trained parameter dicts (detached), in the order of ``inits``.
    """
    if len(inits) != len(seeds) or not inits:
        raise ValueError(f"need one seed per init, got {len(inits)} inits and {len(seeds)} seeds")
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    per_net = epochs * math.ceil(len(labels) / batch_size)
    total = per_net * len(inits)
    fit = dict(epochs=epochs, batch_size=batch_size, lr=lr, betas=betas)
    if method == "vmap":
        report = None if on_step is None else lambda t: on_step(t * len(inits), total)
        with global_rng("trained networks", *seeds, device=images.device):  # a user's dropout
            return _fit_stacked(model, inits, images, labels, seeds, on_step=report, **fit)
    trained = []
    for g, (init, seed) in enumerate(zip(inits, seeds, strict=True)):
        report = None if on_step is None else lambda t, g=g: on_step(g * per_net + t, total)
        gen = _shuffle_generator(seed)
        with global_rng("trained network", seed, device=images.device):
            trained.append(
                train_adam(model, init, images, labels, generator=gen, on_step=report, **fit)
            )
    return trained


def _fit_stacked(
    model: nn.Module,
    inits: Sequence[Params],
    images: Tensor,
    labels: Tensor,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    betas: tuple[float, float],
    on_step: Callable[[int], None] | None,
) -> list[Params]:
    """``train_networks`` for G networks stacked along a leading axis, one vmapped step for all."""
    names = list(inits[0])
    device = images.device
    leaves = {  # the optimiser's leaves: [G, ...] per parameter
        n: torch.stack([p[n].detach() for p in inits]).to(device).requires_grad_() for n in names
    }
    optimizer = torch.optim.Adam(leaves.values(), lr=lr, betas=betas)
    generators = [_shuffle_generator(s) for s in seeds]

    def loss_one(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    # (params [G, ...], x [G, b, C, H, W], y [G, b]) -> [G]; a user's dropout: each network its own masks
    losses_of = vmap(loss_one, randomness="different")
    n = len(labels)
    total = epochs * math.ceil(n / batch_size)
    step = 0
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(
            device
        )  # [G, N]
        for start in range(0, n, batch_size):
            idx = order[:, start : start + batch_size]  # [G, b]
            for group in optimizer.param_groups:
                group["lr"] = lr * cosine(step, total)
            optimizer.zero_grad(set_to_none=True)
            losses_of(leaves, images[idx], labels[idx]).sum().backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
    return [{n: leaves[n][g].detach().clone() for n in names} for g in range(len(inits))]


def train_adam(
    model: nn.Module,
    params: Params,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    generator: torch.Generator,
    on_step: Callable[[int], None] | None = None,
) -> Params:
    """Train one network normally: minibatch Adam with a per-step cosine-decayed lr.

        lr_t = lr · ½ (1 + cos(π t / T)),   T = epochs · ceil(N / batch_size)

    Args:
        model: the network (called functionally; its own parameters are not used).
        params: θ_0 (not modified).
        images: ``[N, C, H, W]`` on the device to train on; ``labels``: ``[N]`` int64 classes.
        epochs, batch_size, lr, betas: the recipe (benchmarks/train_full.py reaches 99.1% on MNIST with 12
            epochs at batch 128, lr 1e-3).
        generator: the batch order: one ``randperm`` per epoch (the last batch may be smaller).
        on_step: called as ``on_step(t)`` after update t (progress reporting).

    Returns:
        The trained parameters, detached.
    """
    theta = {n: p.detach().clone().to(images.device).requires_grad_() for n, p in params.items()}
    optimizer = torch.optim.Adam(theta.values(), lr=lr, betas=betas)
    n = len(labels)
    total = epochs * math.ceil(n / batch_size)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            for group in optimizer.param_groups:
                group["lr"] = lr * cosine(step, total)
            optimizer.zero_grad(set_to_none=True)
            inner_loss(model, theta, images[batch], labels[batch]).backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
    return {n: p.detach() for n, p in theta.items()}


@dataclass(frozen=True)
class FieldRecipe:
    """The field's standard training of a fresh network on a distilled set.

    As in the evaluation code of DC and DSA (Zhao, Mopuri & Bilen, ICLR 2021; Zhao & Bilen, ICML 2021;
    github.com/VICO-UoE/DatasetCondensation, ``utils.evaluate_synset``), which later work (DM, MTT, IDC, FRePo)
    reports against: SGD with momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 at half-way, batch 256,
    300 epochs, optionally with DSA's differentiable-siamese augmentation (``augment="dsa"``) or with DC's own
    MNIST augmentation, crop / scale / rotate (``augment="dc"``, the one behind DC's MNIST numbers). Their code
    trains 1,000 epochs whenever it augments (``main.py``), so DC's and DSA's published numbers are
    ``epochs=1000`` with augmentation; 300 stays the default, the protocol without augmentation.
    """

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    augment: str = "none"  # none | dsa | dc (config.AUGMENTATIONS; augment.py says what each does)

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.momentum, int | float) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay < math.inf):
            raise ValueError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}"
            )

    def describe(self) -> str:
        """One line for reports, e.g. ``SGD m0.9 wd5e-4, lr 0.01 /10 at epoch 150, batch 256, 300 epochs``."""
        # One epoch has no half-way to divide at: train_as_dataset keeps lr for it, and so must the report.
        schedule = f"/10 at epoch {self.epochs // 2}" if self.epochs > 1 else "constant"
        return (
            f"SGD m{self.momentum:g} wd{self.weight_decay:g}, lr {self.lr:g} {schedule}, "
            f"batch {self.batch_size}, {self.epochs} epochs, augmentation {self.augment}"
        )


def train_as_dataset(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    params: Params,
    recipe: FieldRecipe = FieldRecipe(),
    *,
    generator: torch.Generator | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> Params:
    """Train from θ_0 = ``params`` on ``images`` as an ordinary training set (the field's protocol).

    Minibatch SGD with momentum and weight decay over shuffled images; the distilled order and learned lrs
    are *not* replayed:

        v ← μ v + ∇_θ [ℓ(aug(B); θ) + ½ λ‖θ‖²],   θ ← θ − lr_e · v,   lr_e = lr (e < E/2), lr / 10 after.

    Args:
        model: the network (called functionally; its own parameters are never used or changed).
        images: ``[..., C, H, W]`` images, e.g. a distilled ``[S, n, C, H, W]``; flattened to ``[N, C, H, W]``.
        labels: matching int64 classes ``[...]``, or float soft targets ``[..., K]`` (``DistilledData.targets()``).
        params: θ_0 (not modified).
        recipe: epochs, lr, momentum, weight decay, batch size, augmentation.
        generator: CPU generator for shuffling and augmentation (None: a fresh one seeded 0, so runs repeat).
        on_epoch: called with the epoch's number (from 1) after each epoch, e.g. to move a progress bar.

    Returns:
        θ after training, detached.

    Example:
        >>> theta = train_as_dataset(model, data.images, data.targets(), theta0)  # doctest: +SKIP
    """
    x, y = flatten_set(images, labels)  # [N, C, H, W], [N] or [N, K]
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    theta = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    opt = torch.optim.SGD(
        list(theta.values()),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    for epoch in range(recipe.epochs):
        if epoch == recipe.epochs // 2 and recipe.epochs > 1:
            for group in opt.param_groups:
                group["lr"] = recipe.lr / 10
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for i in range(0, len(x), recipe.batch_size):
            batch = order[i : i + recipe.batch_size]
            inputs = augment_batch(x[batch], recipe.augment, generator)
            loss = inner_loss(model, theta, inputs, y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return {name: p.detach() for name, p in theta.items()}
