"""Differentiable minibatch training on a distilled set, and its random-truncated meta-gradient.

The field's protocol (DC, DSA, MTT, …) trains a fresh network on the distilled images as an ordinary training
set. Distilling for it unrolls that training (back-propagation through time, grown up as in Feng et al.,
ICLR 2024, "Embarrassingly simple dataset distillation"):

    B_n          = minibatch n of the M distilled images (epoch-wise reshuffles),     n = 0 … N−1
    g_n          = ∇_θ ℓ(x̃[B_n], ỹ[B_n]; θ_n)
    θ_{n+1}, s_{n+1} = opt(θ_n, s_n, g_n; η)        opt ∈ {sgd, momentum, adam}, s its state (velocity, moments)

and the meta-loss L(θ_e) on real data is back-propagated through a random window (random truncated BPTT):
e ~ U{W, …, N}; updates 0 … e−W−1 run without a graph, updates e−W … e−1 with one. Memory grows with W, not
with N, and sampling e makes the images good at every length of training, not only at N. With
``Recipe.augment = "dsa"`` (or ``"dc"``) every minibatch x̃[B_n] first goes through a random differentiable DSA
(or DC) transform, as in the field's evaluation with augmentation (Zhao & Bilen, ICML 2021; ``augment``).

Everything is a pure function over parameter dicts, as in ``unroll``: forward passes go through
``torch.func.functional_call`` and nothing is mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from datadistill.augment import augment_batch
from datadistill.config import AUGMENTATIONS, INNER_OPTIMIZERS, VMAP_AUGMENT_CONFLICT
from datadistill.formation import decode, decode_targets
from datadistill.types import flatten_set
from datadistill.unroll import MetaGrads, Objective, Params, inner_loss

# Added under Adam's square root: keeps ∂√v/∂v finite where a gradient entry is exactly 0 (a dead ReLU's
# bias), where autograd would otherwise multiply ∞ by 0. Its effect on the update is below float64 rounding.
_SQRT_GUARD = 1e-30


@dataclass(frozen=True)
class Recipe:
    """How a network is trained on the distilled set, in distillation and in its own evaluation.

    Attributes:
        optimizer: ``sgd`` (θ −= η g), ``momentum`` (v = μ v + g; θ −= η v, as ``torch.optim.SGD``) or
            ``adam`` (as ``torch.optim.Adam``).
        updates: N, the optimiser steps from θ_0.
        batch_size: images per update; ``None`` uses all M every update.
        momentum: μ of ``momentum``.
        betas: Adam's (β1, β2).
        eps: Adam's ε.
        augment: ``none``, ``dsa`` or ``dc``: every minibatch goes through DSA's or DC's random
            differentiable transforms (``augment``), so the images learn to train a network that sees them
            augmented, as the field's evaluation with augmentation does.
    """

    optimizer: str = "momentum"
    updates: int = 100
    batch_size: int | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.optimizer not in INNER_OPTIMIZERS:
            raise ValueError(
                f"--inner-optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"--inner-augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}"
            )

    def describe(self) -> str:
        """One line for reports, e.g. ``momentum 0.9, 20 updates of all the images``."""
        kind = {
            "sgd": "SGD",
            "momentum": f"momentum {self.momentum:g}",
            "adam": f"Adam {self.betas[0]:g}/{self.betas[1]:g}",
        }[self.optimizer]
        batch = "all the images" if self.batch_size is None else f"{self.batch_size} images"
        augment = "" if self.augment == "none" else f", {self.augment} augmentation"
        return f"{kind}, {self.updates} updates of {batch}{augment}"

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Recipe:
        """The recipe a manifest's ``recipe`` entry records (``distill_record.recipe_manifest``); what it
        leaves out (``eps``; ``momentum`` or ``betas`` of another optimizer) keeps its default."""
        recorded = {"optimizer": record["optimizer"], "updates": record["updates"]}
        recorded["batch_size"] = record.get("batch_size")  # None: every update sees all the images
        if record.get("momentum") is not None:
            recorded["momentum"] = record["momentum"]
        if record.get("betas") is not None:
            recorded["betas"] = tuple(record["betas"])
        recorded["augment"] = record.get("augment", "none")
        return cls(**recorded)


@dataclass
class OptState:
    """An inner optimiser's state: the step count and per-parameter slots (``velocity``; ``m`` and ``v``)."""

    step: int = 0
    slots: dict[str, Params] = field(default_factory=dict)

    def detached(self) -> OptState:
        return OptState(self.step, {k: _detach(s) for k, s in self.slots.items()})


def _detach(params: Params) -> Params:
    return {name: p.detach() for name, p in params.items()}


def init_state(params: Params, recipe: Recipe) -> OptState:
    """Zero slots for ``recipe.optimizer`` (none for plain SGD)."""
    names = {"sgd": (), "momentum": ("velocity",), "adam": ("m", "v")}[recipe.optimizer]
    zeros = {name: torch.zeros_like(p) for name, p in params.items()}
    return OptState(0, {slot: dict(zeros) for slot in names})


def optimizer_step(
    params: Params, grads: Params, state: OptState, lr: Tensor | float, recipe: Recipe
) -> tuple[Params, OptState]:
    """One update of ``recipe.optimizer``; new ``(θ, state)``, differentiable in θ, g, lr and the state.

    momentum: v ← μ v + g, θ ← θ − η v.   adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g²,
    θ ← θ − η m̂ / (√v̂ + ε) with m̂ = m / (1−β1^t), v̂ = v / (1−β2^t).
    """
    step = state.step + 1
    if recipe.optimizer == "sgd":
        return {n: p - lr * grads[n] for n, p in params.items()}, OptState(step)
    if recipe.optimizer == "momentum":
        velocity = {n: recipe.momentum * state.slots["velocity"][n] + grads[n] for n in params}
        new = {n: p - lr * velocity[n] for n, p in params.items()}
        return new, OptState(step, {"velocity": velocity})
    b1, b2 = recipe.betas
    m = {n: b1 * state.slots["m"][n] + (1 - b1) * grads[n] for n in params}
    v = {n: b2 * state.slots["v"][n] + (1 - b2) * grads[n] ** 2 for n in params}
    c1, c2 = 1 - b1**step, 1 - b2**step
    new = {
        n: p - lr * (m[n] / c1) / ((v[n] / c2 + _SQRT_GUARD).sqrt() + recipe.eps)
        for n, p in params.items()
    }
    return new, OptState(step, {"m": m, "v": v})


def batch_order(num_images: int, recipe: Recipe, generator: torch.Generator) -> Tensor:
    """``[N, B]`` image indices of every update: consecutive chunks of epoch-wise random permutations.

    As a shuffling data loader without ``drop_last`` would, except that a chunk never straddles two epochs
    unevenly: the last chunk of an epoch is topped up from the next permutation, so every update sees B images.
    """
    size = num_images if recipe.batch_size is None else min(recipe.batch_size, num_images)
    needed = recipe.updates * size
    epochs = -(-needed // num_images)
    flat = torch.cat([torch.randperm(num_images, generator=generator) for _ in range(epochs)])
    return flat[:needed].view(recipe.updates, size)


def train(
    model: nn.Module,
    params: Params,
    images: Tensor,
    targets: Tensor,
    lr: Tensor | float,
    recipe: Recipe,
    order: Tensor,
    *,
    start: int = 0,
    stop: int | None = None,
    state: OptState | None = None,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Params, OptState]:
    """Updates ``start … stop−1`` of minibatch training on ``images``; return ``(θ_stop, state)``.

    Args:
        model: the network (called functionally; its own parameters are never used or changed).
        params: θ_start.
        images: ``[M, C, H, W]`` distilled images; ``targets``: ``[M]`` classes or ``[M, K]`` soft targets.
        lr: the step size η (a tensor to differentiate through it).
        recipe: optimiser, N, batch size.
        order: ``[N, B]`` minibatch indices (``batch_order``).
        start, stop: which updates to run (default all N).
        state: the optimiser's state at ``start`` (default: fresh).
        create_graph: keep every update's graph, so that θ_stop is differentiable in the images, targets, lr
            and θ_start; ``False`` is plain training (each θ detached, memory flat).
        generator: CPU generator of the augmentations (``recipe.augment``); required unless ``none``.
    """
    stop = recipe.updates if stop is None else stop
    if recipe.augment != "none" and generator is None:
        raise ValueError(
            f"augment={recipe.augment!r} draws its transforms from a generator: pass one"
        )
    state = init_state(params, recipe) if state is None else state
    if not create_graph:
        params, state = _leaves(params), state.detached()
    elif not all(p.requires_grad for p in params.values()):
        params = {
            n: p if p.requires_grad else p.detach().requires_grad_() for n, p in params.items()
        }
    for n in range(start, stop):
        batch = order[n].to(images.device)
        inputs = augment_batch(images[batch], recipe.augment, generator)
        loss = inner_loss(model, params, inputs, targets[batch])
        grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
        params, state = optimizer_step(
            params, dict(zip(params, grads, strict=True)), state, lr, recipe
        )
        if not create_graph:
            params, state = _leaves(params), state.detached()
    return params, state


def _leaves(params: Params) -> Params:
    return {name: p.detach().requires_grad_() for name, p in params.items()}


def window_end(recipe: Recipe, window: int | None, generator: torch.Generator) -> int:
    """e ~ U{W, …, N}: where the back-propagated window of W updates ends (N when there is no window)."""
    if window is None or window >= recipe.updates:
        return recipe.updates
    return int(torch.randint(window, recipe.updates + 1, (1,), generator=generator))


def window_bounds(
    recipe: Recipe, window: int | None, generator: torch.Generator
) -> tuple[int, int]:
    """``(e − W, e)``: the updates back-propagated through, e from ``window_end`` (``(0, N)`` without a window)."""
    end = window_end(recipe, window, generator)
    return end - (recipe.updates if window is None else min(window, recipe.updates)), end


def truncated_meta_grad(
    model: nn.Module,
    params0: Params,
    images: Tensor,
    targets: Tensor,
    lr: Tensor,
    recipe: Recipe,
    objective: Objective,
    *,
    window: int | None,
    generator: torch.Generator,
    formation: int = 1,
) -> MetaGrads:
    """Meta-gradient of ``objective(θ_e)`` through the last W of e minibatch updates (random truncated BPTT).

    Args:
        model: the network (called functionally).
        params0: θ_0, never differentiated.
        images: ``[..., C, H, W]`` distilled images (e.g. a stored ``[1, M, C, H, W]``).
        targets: matching ``[...]`` classes or ``[..., K]`` soft targets (their gradient is returned when
            floating point).
        lr: the step size η, any shape with one element.
        recipe: the inner training; ``recipe.updates`` is N.
        objective: ``(model, θ_e) -> scalar`` meta-loss on real data.
        window: W, the updates back-propagated through; ``None`` back-propagates through all N.
        generator: draws e, the minibatches and the augmentations (seed it per outer iteration and init to
            resume bit-exact).
        formation: F, the multi-formation factor: training runs on ``formation.decode``'s F² images per
            stored image, and the gradient flows back through the decoding (1: the images as stored).

    Returns:
        ``MetaGrads`` shaped like ``images``, ``lr`` and ``targets``.
    """
    begin, end = window_bounds(recipe, window, generator)
    flat_x, flat_y = flatten_set(images, targets)  # [M, C, H, W], [M] or [M, K]
    soft = flat_y.is_floating_point()
    x = flat_x.requires_grad_()
    y = flat_y.requires_grad_() if soft else flat_y
    train_x, train_y = decode(x, formation), decode_targets(y, formation)  # [M·F², C, H, W], …
    order = batch_order(len(train_x), recipe, generator)  # [N, B]
    theta, state = train(
        model,
        params0,
        train_x.detach(),
        train_y.detach(),
        lr.detach().reshape(()),
        recipe,
        order,
        stop=begin,
        generator=generator,
    )
    eta = lr.detach().reshape(()).requires_grad_()
    theta = {n: p.detach().requires_grad_() for n, p in theta.items()}
    theta, _ = train(
        model,
        theta,
        train_x,
        train_y,
        eta,
        recipe,
        order,
        start=begin,
        stop=end,
        state=state.detached(),
        create_graph=True,
        generator=generator,
    )
    loss = objective(model, theta)
    wrt = (x, eta) + ((y,) if soft else ())
    grads = torch.autograd.grad(loss, wrt)
    return MetaGrads(
        images=grads[0].reshape(images.shape),
        lrs=grads[1].reshape(lr.shape),
        labels=grads[2].reshape(targets.shape) if soft else None,
        loss=loss.detach(),
    )


def batched_truncated_meta_grad(
    model: nn.Module,
    params0: list[Params],
    images: Tensor,
    targets: Tensor,
    lr: Tensor,
    recipe: Recipe,
    objective: Objective,
    *,
    window: int | None,
    generator: torch.Generator,
    formation: int = 1,
) -> MetaGrads:
    """Sum over several θ_0 of ``truncated_meta_grad``, all computed at once with ``torch.func.vmap``.

    The inits share one window end e and one minibatch order, drawn once from ``generator``: the result
    equals summing ``truncated_meta_grad(…, generator=g)`` over ``params0`` with every ``g`` a copy of
    ``generator`` (so one init gives exactly its meta-gradient). Each operation then runs once on a batch
    of k networks, which on a GPU, where these small networks are bound by kernel launches, costs little
    more than one; on a CPU the convolutions become grouped ones, slower than a loop.

    Args:
        params0: the k initial parameter dicts (same names and shapes).
        images, targets, lr, recipe, objective, window, generator, formation: as ``truncated_meta_grad``;
            ``recipe.augment`` must be ``none`` (one augmentation per init cannot be shared).

    Returns:
        ``MetaGrads`` shaped like ``images``, ``lr`` and ``targets``, summed over the inits (the loss too).
    """
    if recipe.augment != "none":
        raise ValueError(VMAP_AUGMENT_CONFLICT)
    begin, end = window_bounds(recipe, window, generator)
    flat_x, flat_y = flatten_set(images, targets)  # [M, C, H, W], [M] or [M, K]
    soft = flat_y.is_floating_point()
    flat_x, flat_y = flat_x.detach(), flat_y.detach()
    plain_x, plain_y = decode(flat_x, formation), decode_targets(flat_y, formation)
    order = batch_order(len(plain_x), recipe, generator).to(flat_x.device)  # [N, B]
    eta = lr.detach().reshape(())

    def inner(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return inner_loss(model, params, x, y)

    def run(params: Params, slots: dict, x: Tensor, y: Tensor, eta: Tensor, start: int, stop: int):
        state = OptState(start, slots)
        for n in range(start, stop):
            grads = torch.func.grad(inner)(params, x[order[n]], y[order[n]])
            params, state = optimizer_step(params, grads, state, eta, recipe)
        return params, state.slots

    def prefix(theta0: Params, slots: dict) -> tuple[Params, dict]:
        return run(theta0, slots, plain_x, plain_y, eta, 0, begin)

    def meta_loss(x: Tensor, eta: Tensor, y: Tensor, theta: Params, slots: dict) -> Tensor:
        train_x, train_y = decode(x, formation), decode_targets(y, formation)
        theta, _ = run(theta, slots, train_x, train_y, eta, begin, end)
        return objective(model, theta)

    stacked = {name: torch.stack([p[name].detach() for p in params0]) for name in params0[0]}
    slots = init_state(stacked, recipe).slots  # zeros, stacked like the parameters
    if begin > 0:
        stacked, slots = torch.func.vmap(prefix, randomness="different")(stacked, slots)
    argnums = (0, 1, 2) if soft else (0, 1)
    per_init = torch.func.vmap(
        torch.func.grad_and_value(meta_loss, argnums=argnums),
        in_dims=(None, None, None, 0, 0),
        randomness="different",  # a user's dropout: each init draws its own masks
    )
    grads, losses = per_init(flat_x, eta, flat_y, stacked, slots)
    summed = [g.sum(0) for g in grads]
    return MetaGrads(
        images=summed[0].reshape(images.shape),
        lrs=summed[1].reshape(lr.shape),
        labels=summed[2].reshape(targets.shape) if soft else None,
        loss=losses.sum().detach(),
    )
