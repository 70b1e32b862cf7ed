"""Differentiable unrolled training: the inner loop of dataset distillation.

Wang et al. 2018, Alg. 1 and §3.4. A network is trained from θ_0 by replaying the distilled steps in order,
``epochs`` times over, each update with its own learned step size:

    θ_{t+1} = θ_t − η_t ∇_θ ℓ(x̃_{t mod S}, ỹ_{t mod S}; θ_t),     t = 0 … T−1,  T = S · epochs

and the meta-gradient of an objective L(θ_T) (e.g. cross-entropy on a real batch) with respect to the distilled
images x̃, step sizes η and (optionally learned, soft) labels ỹ is what the outer loop descends on.

Everything here is a pure function over parameter dicts (``dict(model.named_parameters())``): forward passes go
through ``torch.func.functional_call``; nothing is mutated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from datadistill.types import Objective, Params, Steps

# (model, θ, x [n, …], y [n] or [n, K]) -> scalar training loss of one update
InnerLoss = Callable[[nn.Module, Params, Tensor, Tensor], Tensor]

MetaGradMethod = Literal["autograd", "reverse"]


@dataclass
class MetaGrads:
    """∂L/∂(images, lrs, labels) of the meta-loss L, shaped like the fields of ``Steps``."""

    images: Tensor
    lrs: Tensor
    labels: Tensor | None  # None unless the labels are learned (floating point)
    loss: Tensor  # the meta-loss L(θ_T), detached

    def tensors(self) -> list[Tensor]:
        """``[loss, images, lrs]`` (+ ``labels`` when learned): the fields to sum or all-reduce."""
        return [self.loss, self.images, self.lrs] + (
            [self.labels] if self.labels is not None else []
        )


def inner_loss(model: nn.Module, params: Params, images: Tensor, labels: Tensor) -> Tensor:
    """Training loss of one distilled step: cross-entropy against classes ``[n]`` or soft targets ``[n, K]``.

    Soft targets are taken as they are (``F.cross_entropy`` with float targets is ``mean −Σ y log softmax``).
    """
    logits = functional_call(model, params, (images,))
    return F.cross_entropy(logits, labels)


def sgd_step(params: Params, grads: Params | tuple[Tensor, ...], lr: Tensor | float) -> Params:
    """θ' = θ − lr · g, as a new dict (differentiable in θ, g and lr)."""
    if not isinstance(grads, dict):
        grads = dict(zip(params, grads, strict=True))
    return {name: p - lr * grads[name] for name, p in params.items()}


def _step(
    model: nn.Module,
    params: Params,
    steps: Steps,
    t: int,
    *,
    create_graph: bool,
    inner: InnerLoss = inner_loss,
) -> Params:
    """One GD update t of the schedule (uses step ``t mod S`` and lr ``t``)."""
    s = t % steps.num_steps
    loss = inner(model, params, steps.images[s], steps.labels[s])
    grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
    return sgd_step(params, grads, steps.lrs[t])


def _leaves(params: Params) -> Params:
    return {name: p.detach().requires_grad_() for name, p in params.items()}


def unroll(
    model: nn.Module,
    params: Params,
    steps: Steps,
    *,
    create_graph: bool,
    inner: InnerLoss = inner_loss,
) -> list[Params]:
    """Train from ``params`` by replaying ``steps``; return the trajectory ``[θ_0, θ_1, …, θ_T]``.

    Args:
        model: the network; called functionally, its own parameters are never used or changed.
        params: θ_0.
        steps: distilled images, labels and per-update lrs.
        create_graph: keep the graph of every update so that θ_T is differentiable in the images, lrs and
            labels (the ``autograd`` meta-gradient). ``False`` is plain training (evaluation): each θ_t is
            detached, so memory stays flat.
        inner: the training loss ``(model, θ, x, y) -> scalar`` (default: cross-entropy, ``inner_loss``; the
            linear case passes a quadratic one).
    """
    # The first update needs ∇_θ ℓ at θ_0, so θ_0 must be in the graph; a θ_0 that already requires grad
    # (e.g. to differentiate through the init) is kept as is.
    if create_graph:
        params = {
            n: p if p.requires_grad else p.detach().requires_grad_() for n, p in params.items()
        }
    trajectory = [params if create_graph else _leaves(params)]
    for t in range(steps.num_updates):
        nxt = _step(model, trajectory[-1], steps, t, create_graph=create_graph, inner=inner)
        trajectory.append(nxt if create_graph else _leaves(nxt))
    return trajectory


def meta_grad(
    model: nn.Module,
    params0: Params,
    steps: Steps,
    objective: Objective,
    *,
    method: MetaGradMethod = "autograd",
    inner: InnerLoss = inner_loss,
) -> MetaGrads:
    """Meta-gradient of ``objective(θ_T)`` with respect to the distilled images, lrs and learned labels.

    Both methods compute the same exact gradient; ``reverse`` trades one extra forward/backward per update
    for memory that does not grow with the graphs of all T updates.

    Args:
        model: the network (called functionally).
        params0: θ_0; never differentiated (fixed, random or pre-trained init).
        steps: the distilled schedule; its tensors need not require grad.
        objective: ``(model, θ_T) -> scalar`` meta-loss, e.g. cross-entropy on a real batch.
        method: ``"autograd"`` keeps the whole unrolled graph; ``"reverse"`` walks the updates backwards.
        inner: the training loss of every update (as in ``unroll``); floating-point labels get a gradient.
    """
    if method == "autograd":
        return _meta_grad_autograd(model, params0, steps, objective, inner)
    if method == "reverse":
        return _meta_grad_reverse(model, params0, steps, objective, inner)
    raise ValueError(f"unknown meta-gradient method {method!r}: choose 'autograd' or 'reverse'")


def _learned_labels(steps: Steps) -> bool:
    return steps.labels.is_floating_point()


def _meta_grad_autograd(
    model: nn.Module, params0: Params, steps: Steps, objective: Objective, inner: InnerLoss
) -> MetaGrads:
    learn_labels = _learned_labels(steps)
    leaf = Steps(
        images=steps.images.detach().requires_grad_(),
        labels=steps.labels.detach().requires_grad_() if learn_labels else steps.labels,
        lrs=steps.lrs.detach().requires_grad_(),
    )
    theta_T = unroll(model, params0, leaf, create_graph=True, inner=inner)[-1]
    loss = objective(model, theta_T)
    wrt = (leaf.images, leaf.lrs) + ((leaf.labels,) if learn_labels else ())
    grads = torch.autograd.grad(loss, wrt)
    return MetaGrads(grads[0], grads[1], grads[2] if learn_labels else None, loss.detach())


def _meta_grad_reverse(
    model: nn.Module, params0: Params, steps: Steps, objective: Objective, inner: InnerLoss
) -> MetaGrads:
    # The paper's backward pass (Wang et al. 2018; cf. Maclaurin et al. 2015), with recomputation.
    #
    # Notation: θ_{t+1} = θ_t − η_t g_t with g_t = ∇_θ ℓ(x̃_s, ỹ_s; θ_t), s = t mod S; L = objective(θ_T).
    # Forward: plain training that keeps only the T+1 parameter dicts θ_0 … θ_T (no graphs).
    # Backward: walk t = T−1 … 0. At the top of step t, `d_theta` holds ∂L/∂θ_{t+1}. Rebuild update t's graph
    # from the saved θ_t and pull `d_theta` through it (one Hessian-vector product):
    #     ∂L/∂η_t    = −⟨g_t, ∂L/∂θ_{t+1}⟩
    #     ∂L/∂x̃_s  += −η_t ∂/∂x̃_s ⟨g_t, ∂L/∂θ_{t+1}⟩      (and likewise ỹ_s when labels are learned)
    #     ∂L/∂θ_t    = ∂L/∂θ_{t+1} − η_t ∇²_θ ℓ · ∂L/∂θ_{t+1}
    # so memory is one update's graph plus T parameter copies, instead of T graphs.
    learn_labels = _learned_labels(steps)
    images, labels, lrs = steps.images.detach(), steps.labels.detach(), steps.lrs.detach()
    plain = Steps(images, labels, lrs)
    trajectory = unroll(model, params0, plain, create_graph=False, inner=inner)

    theta_T = trajectory[-1]
    loss = objective(model, theta_T)
    d_theta = torch.autograd.grad(loss, tuple(theta_T.values()))

    d_images = torch.zeros_like(images)
    d_labels = torch.zeros_like(labels) if learn_labels else None
    d_lrs = torch.zeros_like(lrs)
    for t in reversed(range(plain.num_updates)):
        s = t % plain.num_steps
        theta_t = _leaves(trajectory[t])
        x_s = images[s].detach().requires_grad_()
        y_s = labels[s].detach().requires_grad_() if learn_labels else labels[s]
        lr_t = lrs[t].detach().requires_grad_()
        step_t = Steps(x_s.unsqueeze(0), y_s.unsqueeze(0), lr_t.reshape(1))
        theta_next = _step(model, theta_t, step_t, 0, create_graph=True, inner=inner)
        wrt = (*theta_t.values(), x_s, lr_t) + ((y_s,) if learn_labels else ())
        grads = torch.autograd.grad(tuple(theta_next.values()), wrt, grad_outputs=d_theta)
        n = len(theta_t)
        d_theta = grads[:n]
        d_images[s] += grads[n]
        d_lrs[t] = grads[n + 1]
        if learn_labels:
            d_labels[s] += grads[n + 2]
    return MetaGrads(d_images, d_lrs, d_labels, loss.detach())


def batched_meta_grad(
    model: nn.Module, params0: list[Params], steps: Steps, objective: Objective
) -> MetaGrads:
    """Sum over several θ_0 of the meta-gradient, computed for all of them at once with ``torch.func.vmap``.

    Equal to summing ``meta_grad(..., method="autograd")`` over ``params0`` (and its loss is the sum too), but
    each operation runs once on a batch of networks: on a GPU, where these small networks are bound by kernel
    launches, k inits cost little more than one.

    Args:
        params0: the k initial parameter dicts (same names and shapes).
    """
    learn_labels = _learned_labels(steps)
    stacked = {name: torch.stack([p[name] for p in params0]) for name in params0[0]}

    def inner(params: Params, x: Tensor, y: Tensor) -> Tensor:
        return inner_loss(model, params, x, y)

    def meta_loss(images: Tensor, lrs: Tensor, labels: Tensor, theta0: Params) -> Tensor:
        theta = theta0
        for t in range(lrs.shape[0]):
            s = t % images.shape[0]
            theta = sgd_step(theta, torch.func.grad(inner)(theta, images[s], labels[s]), lrs[t])
        return objective(model, theta)

    argnums = (0, 1, 2) if learn_labels else (0, 1)
    per_init = torch.func.vmap(
        torch.func.grad_and_value(meta_loss, argnums=argnums),
        in_dims=(None, None, None, 0),
        randomness="different",  # a user's dropout: each init draws its own masks
    )
    grads, losses = per_init(
        steps.images.detach(), steps.lrs.detach(), steps.labels.detach(), stacked
    )
    summed = [g.sum(0) for g in grads]
    return MetaGrads(
        summed[0], summed[1], summed[2] if learn_labels else None, losses.sum().detach()
    )
