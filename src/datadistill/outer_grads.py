"""What one outer iteration draws and differentiates, on one rank (Alg. 1, lines 3–6).

    B_t          = a batch of real images, from a permutation seeded by (seed, t)            real_batch
    θ_0^(j)      ~ p(θ_0), j = r·k … r·k + k − 1 on rank r (optionally perturbed)            draw_inits
    g_j          = ∇_{x̃, η̃, ỹ} L(θ_T(x̃, η̃, ỹ; θ_0^(j)); B_t)                               meta_grads

θ_T comes from the replay protocol (the stored steps in order, ``unroll``; with ``--formation`` on the decoded
images, the gradient pulled back through the decoding) or from the dataset protocol (minibatch training with a
random truncated window, ``minibatch_unroll``). Every draw is seeded from ``(seed, t, …)``, so a rank's
gradients depend only on the set and t; ``distill.outer_step`` averages them over inits and ranks and takes the
Adam step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from datadistill.config import DistillConfig
from datadistill.formation import decode_steps
from datadistill.inits import InitDistribution
from datadistill.minibatch_unroll import Recipe, batched_truncated_meta_grad, truncated_meta_grad
from datadistill.seeds import generator as _generator
from datadistill.seeds import global_rng
from datadistill.types import Objective
from datadistill.unroll import MetaGrads, Params, Steps, batched_meta_grad, meta_grad


def real_batch(num_real: int, cfg: DistillConfig, iteration: int, rank: int = 0) -> Tensor:
    """Indices [B] of the real images of an iteration's meta-loss: the first ``cfg.batch_size`` of a
    permutation seeded from ``(cfg.seed, iteration)``, the same on every rank; with ``batch_per_rank``
    rank r takes the r-th block of ``batch_size`` instead, so the ranks' batches are disjoint and N ranks
    see the first N · B of the permutation (``check_real_batch`` makes sure there are that many)."""
    order = torch.randperm(num_real, generator=_generator(cfg.seed, iteration, "batch"))
    block = rank if cfg.batch_per_rank else 0
    return order[block * cfg.batch_size : (block + 1) * cfg.batch_size]


def check_real_batch(cfg: DistillConfig, num_real: int, world_size: int) -> None:
    """Refuse ``--batch-per-rank`` when the processes' disjoint batches need more real images than
    there are (a rank would get a short or empty batch)."""
    needed = cfg.batch_size * world_size
    if cfg.batch_per_rank and world_size > 1 and needed > num_real:
        raise ValueError(
            f"--batch-per-rank with --batch-size {cfg.batch_size} on {world_size} processes needs "
            f"{needed} real training images, but there are {num_real}; use --batch-size "
            f"{num_real // world_size} or less, or --no-batch-per-rank"
        )


def draw_inits(
    inits: InitDistribution,
    cfg: DistillConfig,
    iteration: int,
    indices: range,
    device: torch.device,
    *stream: str,
) -> list[Params]:
    """θ_0 of ``iteration`` for the global init indices ``indices`` (a rank's r·k … r·k + k − 1), on
    ``device``, each perturbed by ``cfg.init_noise``; ``stream`` keeps the draws of ``--extra-models``
    apart from those of ``--model`` (which it leaves as they were before extra networks existed)."""
    return [
        {
            n: p.to(device)
            for n, p in perturbed(
                inits.sample(_generator(cfg.seed, iteration, "init", *stream, j)),
                cfg.init_noise,
                _generator(cfg.seed, iteration, "init-noise", *stream, j),
            ).items()
        }
        for j in indices
    ]


def perturbed(params: Params, noise: float, generator: torch.Generator) -> Params:
    """θ_0 + ε with ε ~ N(0, (noise · rms(θ))²) per tensor (``--init-noise``; 0 returns ``params``).

    Distilling for a cloud of networks around every draw, rather than for the draws themselves, keeps the
    images from fitting the quirks of the few networks of a pre-trained pool.
    """
    if noise == 0:
        return params
    out = {}
    for name, p in params.items():
        rms = p.detach().pow(2).mean().sqrt()
        out[name] = p + noise * rms * torch.randn(p.shape, generator=generator, dtype=p.dtype)
    return out


def meta_grads(
    model: nn.Module,
    params0: Sequence[Params],
    steps: Steps,
    objective: Objective,
    cfg: DistillConfig,
    *,
    recipe: Recipe | None,
    vmap_inits: bool,
    iteration: int,
    first: int,
    stream: tuple[str, ...] = (),
) -> list[MetaGrads]:
    """The meta-gradients of ``objective`` from each θ_0 of ``params0`` (global indices ``first`` …):
    one ``MetaGrads`` per init, or one summed over them with ``vmap_inits``.

    Args:
        model: the network, called functionally.
        params0: θ_0 of this rank's inits.
        steps: the set: images ``[S, n, C, H, W]``, labels, lrs ``[S]``.
        objective: ``(model, θ_T) -> scalar`` on the iteration's real batch.
        cfg: the run's settings (``meta_grad``, ``window``, ``formation``, ``seed``).
        recipe: the dataset protocol's inner training; ``None`` replays ``steps`` (the paper's protocol).
        vmap_inits: batch the inits with ``torch.func.vmap``.
        iteration: t, which seeds the windows, minibatch orders and augmentations.
        first: the global index of ``params0[0]`` (a rank's draws differ from another's).
        stream: a name that keeps an extra network's draws apart (``--extra-models``).
    """
    device = next(iter(params0[0].values())).device

    def own_draws(j: int) -> AbstractContextManager[None]:
        """Init ``first + j``'s stream for what a user's network draws itself (dropout masks); batched
        inits share the first's, as they share its window and minibatch order."""
        return global_rng(cfg.seed, iteration, "network draws", *stream, first + j, device=device)

    if recipe is not None:
        return _minibatch_meta_grads(
            model, params0, steps, objective, cfg, recipe, vmap_inits, iteration, first, stream,
            own_draws,
        )  # fmt: skip

    def replayed(s: Steps) -> list[MetaGrads]:
        if vmap_inits:
            with own_draws(0):
                return [batched_meta_grad(model, list(params0), s, objective)]
        grads = []
        for j, p in enumerate(params0):
            with own_draws(j):
                grads.append(meta_grad(model, p, s, objective, method=cfg.meta_grad))
        return grads

    if cfg.formation > 1:
        return through_decode(steps, cfg.formation, replayed)
    return replayed(steps)


def through_decode(
    steps: Steps, factor: int, replayed: Callable[[Steps], list[MetaGrads]]
) -> list[MetaGrads]:
    """``replayed``'s meta-gradients of the replay protocol taken on the decoded schedule (``formation.decode_steps``),
    pulled back to the stored images and targets: ∂L/∂s = D^T ∂L/∂decode(s), D being the linear decode,
    applied with one vector-Jacobian product per init."""
    images = steps.images.detach().requires_grad_()
    learned = steps.labels.is_floating_point()
    labels = steps.labels.detach().requires_grad_(learned)
    decoded = decode_steps(Steps(images, labels, steps.lrs), factor)
    outputs = [decoded.images] + ([decoded.labels] if learned else [])
    inputs = [images] + ([labels] if learned else [])
    plain = Steps(decoded.images.detach(), decoded.labels.detach(), steps.lrs)
    pulled = []
    for g in replayed(plain):
        cotangents = [g.images] + ([g.labels] if learned else [])
        back = torch.autograd.grad(outputs, inputs, cotangents, retain_graph=True)
        pulled.append(MetaGrads(back[0], g.lrs, back[1] if learned else None, g.loss))
    return pulled


def _minibatch_meta_grads(
    model: nn.Module,
    params0: Sequence[Params],
    steps: Steps,
    objective: Objective,
    cfg: DistillConfig,
    recipe: Recipe,
    vmap_inits: bool,
    iteration: int,
    first: int,
    stream: tuple[str, ...],
    own_draws: Callable[[int], AbstractContextManager[None]],
) -> list[MetaGrads]:
    """The dataset protocol: minibatch training on the set, back-propagated through a random truncated
    window; init j's window, minibatches and augmentations come from the stream (seed, t, "inner", j)."""
    task = (steps.images, steps.labels, steps.lrs, recipe, objective)
    if vmap_inits:  # one window and minibatch order for this rank's inits: the first's stream
        with own_draws(0):
            batched = batched_truncated_meta_grad(
                model,
                list(params0),
                *task,
                window=cfg.window,
                generator=_generator(cfg.seed, iteration, "inner", *stream, first),
                formation=cfg.formation,
            )
        return [batched]
    grads = []
    for j, p in enumerate(params0):
        with own_draws(j):
            grads.append(
                truncated_meta_grad(
                    model,
                    p,
                    *task,
                    window=cfg.window,
                    generator=_generator(cfg.seed, iteration, "inner", *stream, first + j),
                    formation=cfg.formation,
                )
            )
    return grads
