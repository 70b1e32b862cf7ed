"""The linear case of dataset distillation, made runnable (Wang et al. 2018, §3.3).

The theory (the problem, one step in closed form, the expected excess loss, the lower bound for M < D and a
construction that attains it) is in ``linear_theory.py``; here :func:`distill_linear` learns (x̃, ỹ, η̃) with
the same meta-gradient machinery as image distillation and :func:`sweep` compares the two over M / D. See
``docs/linear.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datadistill.artifacts import check_figure_path, check_writable
from datadistill.config import LINEAR_RATIOS, LinearConfig
from datadistill.experiments.linear_theory import (
    LinearProblem,
    closed_form,
    expected_excess,
    init_sigma,
    lower_bound,
    mnist_problem,
    one_step,
    regression_loss,
    synthetic_problem,
)
from datadistill.memory import check_fits_in_memory
from datadistill.unroll import MetaGrads, Objective, Params, Steps, meta_grad, unroll

__all__ = [
    "DEFAULT_RATIOS",
    "LinearDistilled",
    "LinearEval",
    "LinearProblem",
    "SweepRow",
    "closed_form",
    "distill_linear",
    "evaluate_linear",
    "expected_excess",
    "format_table",
    "lower_bound",
    "mnist_problem",
    "one_step",
    "plot_sweep",
    "regression_loss",
    "regression_unroll",
    "run_linear",
    "sweep",
    "synthetic_problem",
]

DEFAULT_RATIOS = LINEAR_RATIOS


# --------------------------------------------------------------------------------------------
# Regression inner loop and meta-gradient


def regression_unroll(
    model: nn.Module, params: Params, steps: Steps, *, create_graph: bool
) -> list[Params]:
    """``unroll.unroll`` with the quadratic loss: θ_{t+1} = θ_t − η_t ∇ℓ(x̃_s, ỹ_s; θ_t), s = t mod S.

    ``steps.labels`` ``[S, M, O]`` are real-valued targets, ``steps.images`` ``[S, M, D]`` the inputs.
    """
    return unroll(model, params, steps, create_graph=create_graph, inner=regression_loss)


def _regression_meta_grad(
    model: nn.Module, params0: Params, steps: Steps, objective: Objective
) -> MetaGrads:
    """``unroll.meta_grad(method="autograd")`` with the quadratic inner loss: the gradient with respect to
    the inputs, the lrs and the real-valued targets (floating-point labels are always differentiated)."""
    return meta_grad(model, params0, steps, objective, method="autograd", inner=regression_loss)


# --------------------------------------------------------------------------------------------
# Learning and evaluating distilled points


@dataclass
class LinearDistilled:
    """M learned points and one step size.

    Attributes:
        x: ``[M, D]`` distilled inputs.
        y: ``[M, O]`` distilled real-valued targets.
        lr: η̃ (softplus of the learned raw lr).
        losses: meta-loss (mean over the iteration's inits) per outer iteration.
    """

    x: Tensor
    y: Tensor
    lr: float
    losses: list[float]


@dataclass
class LinearEval:
    """Excess loss of one step from held-out inits.

    Attributes:
        excess_mean: mean over inits of L(θ1) − L(θ*).
        excess_max: largest L(θ1) − L(θ*) over inits.
        relative_mean: ``excess_mean`` / L(θ*).
        relative_max: ``excess_max`` / L(θ*).
        expected: E_{θ0}[L(θ1)] − L(θ*), exact (:func:`expected_excess`).
        num_inits: number of held-out inits.
    """

    excess_mean: float
    excess_max: float
    relative_mean: float
    relative_max: float
    expected: float
    num_inits: int


def _mean_meta_grad(problem: LinearProblem, steps: Steps, theta0: Tensor) -> MetaGrads:
    """Meta-gradient of the mean over K inits θ0 ``[K, D, O]`` of L(θ_T), in one graph.

    The K inits run as one bias-free ``nn.Linear(D, K·O)`` whose targets are ỹ repeated K times. The
    quadratic loss is a sum over output columns and each column's gradient involves only that
    column, so column block j (weight rows j·O … (j+1)·O − 1) follows exactly the trajectory of
    init j alone, and the real-data loss summed over blocks / K is the mean meta-loss. One graph
    instead of K keeps the per-iteration overhead of these small matrices down (≈ 4× for K = 4);
    ``tests/test_linear.py`` checks it against K separate ``_regression_meta_grad`` calls.

    Args:
        problem: the real data.
        steps: images ``[S, M, D]``, real-valued targets ``[S, M, O]``, lrs ``[T]``.
        theta0: ``[K, D, O]`` inits.

    Returns:
        Gradients shaped like ``steps``' fields, and the mean meta-loss.
    """
    k, d, o = theta0.shape
    model = nn.Linear(d, k * o, bias=False).to(theta0.dtype)  # called functionally only
    real_y = problem.y.repeat(1, k)  # [N, K·O]

    def objective(model: nn.Module, params: Params) -> Tensor:
        return regression_loss(model, params, problem.x, real_y) / k

    # nn.Linear stores weight = θᵀ; block j of its rows is init j: [K, D, O] -> [K·O, D].
    params0 = {"weight": theta0.transpose(1, 2).reshape(k * o, d)}
    wide = Steps(steps.images, steps.labels.repeat(1, 1, k), steps.lrs)  # [S, M, K·O] targets
    mg = _regression_meta_grad(model, params0, wide, objective)
    # ỹ is shared by the K blocks: its gradient is the sum of theirs.
    d_labels = mg.labels.reshape(*steps.labels.shape[:-1], k, o).sum(dim=-2)
    return MetaGrads(mg.images, mg.lrs, d_labels, mg.loss)


def distill_linear(
    problem: LinearProblem,
    num_points: int,
    *,
    iterations: int = 400,
    inits_per_iteration: int = 4,
    sigma: float | None = None,
    outer_lr: float = 0.05,
    init_lr: float = 0.5,
    seed: int = 0,
) -> LinearDistilled:
    """Learn M points, their targets and one step size by meta-gradient descent (Alg. 1, random init).

    Each iteration samples fresh θ0 ~ N(0, σ²) (``inits_per_iteration`` of them), takes one GD step
    on the distilled points, and descends the mean of the real-data loss L(θ1) with Adam
    (betas 0.5, 0.999 as in the paper; lr cosine-decayed to 0 so the last iterations settle).

    Args:
        problem: the real data (the meta-loss is L on all of it).
        num_points: M.
        iterations: outer iterations.
        inits_per_iteration: θ0 samples averaged per iteration.
        sigma: init standard deviation σ (default 1/√D).
        outer_lr: Adam's peak lr.
        init_lr: η̃ at the start (parameterised as softplus(raw)).
        seed: seeds the distilled data's init and the training inits (not the held-out ones).

    Returns:
        The learned points, targets and step size.
    """
    sigma = init_sigma(problem, sigma)
    d, o, k, dtype = problem.dim, problem.out_dim, inits_per_iteration, problem.x.dtype
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, num_points, d, generator=g, dtype=dtype).requires_grad_()  # [1, M, D]
    y = torch.zeros(1, num_points, o, dtype=dtype, requires_grad=True)  # [1, M, O]
    raw_lr = torch.tensor([math.log(math.expm1(init_lr))], dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([x, y, raw_lr], lr=outer_lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations)

    losses = []
    for _ in range(iterations):
        lrs = F.softplus(raw_lr)  # the one place the lr parameterisation lives
        theta0 = sigma * torch.randn(k, d, o, generator=g, dtype=dtype)  # fresh inits, [K, D, O]
        mg = _mean_meta_grad(problem, Steps(x.detach(), y.detach(), lrs.detach()), theta0)
        x.grad, y.grad = mg.images, mg.labels
        (raw_lr.grad,) = torch.autograd.grad(lrs, raw_lr, grad_outputs=mg.lrs)  # through softplus
        opt.step()
        sched.step()
        losses.append(float(mg.loss))
    lr = float(F.softplus(raw_lr.detach()))
    return LinearDistilled(x.detach()[0], y.detach()[0], lr, losses)


def evaluate_linear(
    problem: LinearProblem,
    x: Tensor,
    y: Tensor,
    lr: float,
    *,
    num_inits: int = 1000,
    sigma: float | None = None,
    seed: int = 12345,
) -> LinearEval:
    """Excess loss L(θ1) − L(θ*) after one step on (x̃, ỹ, η̃) from fresh inits θ0 ~ N(0, σ²).

    Args:
        problem: the real data.
        x: ``[M, D]`` distilled inputs.
        y: ``[M, O]`` distilled targets.
        lr: η̃.
        num_inits: held-out inits K.
        sigma: init standard deviation (default 1/√D, as in :func:`distill_linear`).
        seed: seeds the held-out inits; keep it apart from the distillation seeds.
    """
    sigma = init_sigma(problem, sigma)
    g = torch.Generator().manual_seed(seed)
    shape = (num_inits, problem.dim, problem.out_dim)
    theta0 = sigma * torch.randn(*shape, generator=g, dtype=problem.x.dtype)  # [K, D, O]
    excess = problem.excess(one_step(theta0, x, y, lr))  # [K]
    mean, worst = float(excess.mean()), float(excess.max())
    return LinearEval(
        excess_mean=mean,
        excess_max=worst,
        relative_mean=mean / problem.optimal_loss,
        relative_max=worst / problem.optimal_loss,
        expected=expected_excess(problem, x, y, lr, sigma),
        num_inits=num_inits,
    )


# --------------------------------------------------------------------------------------------
# The sweep over M / D


@dataclass
class SweepRow:
    """One M of a sweep: the learned points against the bound and the closed form.

    Attributes:
        data: problem name.
        dim: D.
        num_points: M.
        ratio: M / D.
        learned_excess: mean excess loss of the learned points on held-out inits.
        learned_relative: ``learned_excess`` / L(θ*).
        learned_expected: exact expected excess of the learned points.
        learned_lr: the learned η̃.
        bound: :func:`lower_bound` (0 for M ≥ D).
        closed_form_excess: exact expected excess of :func:`closed_form` (0 for M ≥ D).
        optimal_loss: L(θ*).
        sigma: init standard deviation σ of the training and held-out inits.
        seconds: wall time of the distillation.
    """

    data: str
    dim: int
    num_points: int
    ratio: float
    learned_excess: float
    learned_relative: float
    learned_expected: float
    learned_lr: float
    bound: float
    closed_form_excess: float
    optimal_loss: float
    sigma: float
    seconds: float


def sweep(
    problem: LinearProblem,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    *,
    iterations: int = 400,
    inits_per_iteration: int = 4,
    num_eval_inits: int = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> list[SweepRow]:
    """Distil M = round(r · D) points for each ratio r and measure them against the bound.

    Returns:
        One row per ratio, in the given order.
    """
    sigma = init_sigma(problem, sigma)
    rows = []
    for ratio in ratios:
        m = max(1, round(ratio * problem.dim))
        start = time.perf_counter()
        learned = distill_linear(
            problem,
            m,
            iterations=iterations,
            inits_per_iteration=inits_per_iteration,
            sigma=sigma,
            seed=seed,
        )
        seconds = time.perf_counter() - start
        ev = evaluate_linear(
            problem, learned.x, learned.y, learned.lr, num_inits=num_eval_inits, sigma=sigma
        )
        cx, cy = closed_form(problem, m, sigma=sigma, seed=seed)
        rows.append(
            SweepRow(
                data=problem.name,
                dim=problem.dim,
                num_points=m,
                ratio=m / problem.dim,
                learned_excess=ev.excess_mean,
                learned_relative=ev.relative_mean,
                learned_expected=ev.expected,
                learned_lr=learned.lr,
                bound=lower_bound(problem, m, sigma),
                closed_form_excess=expected_excess(problem, cx, cy, 1.0, sigma),
                optimal_loss=problem.optimal_loss,
                sigma=sigma,
                seconds=seconds,
            )
        )
    return rows


def format_table(rows: Sequence[SweepRow]) -> str:
    """A Markdown table of a sweep (excess losses are L(θ1) − L(θ*) on held-out inits)."""
    lines = [
        "| data | D | M | M/D | learned excess | learned / L* | lower bound | closed form | η̃ | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.data} | {r.dim} | {r.num_points} | {r.ratio:.2f} | {r.learned_excess:.3e} "
            f"| {r.learned_relative:.2e} | {r.bound:.3e} | {r.closed_form_excess:.3e} "
            f"| {r.learned_lr:.3f} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def plot_sweep(
    rows: Sequence[SweepRow], path: str | Path, problems: Sequence[LinearProblem] = ()
) -> None:
    """Relative excess loss vs M / D, one panel per problem, with M = D and the bound marked.

    Top row: linear y axis. Bottom row: logarithmic, where values below 1e-24 (the exact zeros of
    the bound and the closed form for M ≥ D, up to rounding) are drawn on that floor.

    Args:
        rows: a sweep's rows, possibly for several problems (one panel per ``data`` name).
        path: PNG file to write.
        problems: the swept problems; where given, the bound is drawn for every M in 1 … D − 1
            rather than only at the swept ratios.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers or in CI
    import matplotlib.pyplot as plt

    floor = 1e-24
    by_name = {p.name: p for p in problems}
    names = list(dict.fromkeys(r.data for r in rows))
    # Top row linear (the wall at M = D and learned vs bound for M < D), bottom row log (how close
    # to exact the M ≥ D points get).
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        rs = sorted((r for r in rows if r.data == name), key=lambda r: r.ratio)
        d, best = rs[0].dim, rs[0].optimal_loss
        ratios = [r.ratio for r in rs]
        if name in by_name:
            bound_ratios = [m / d for m in range(1, d + 1)]
            bound = [lower_bound(by_name[name], m, rs[0].sigma) for m in range(1, d + 1)]
        else:
            bound_ratios = [r.ratio for r in rs if r.ratio < 1]
            bound = [r.bound for r in rs if r.ratio < 1]
        for ax, log in ((axes[0, col], False), (axes[1, col], True)):

            def rel(values: Sequence[float], log: bool = log, best: float = best) -> list[float]:
                return [max(v / best, floor) if log else v / best for v in values]

            learned = rel([r.learned_excess for r in rs])
            ax.plot(ratios, learned, "o-", label="learned, held-out inits")
            closed = rel([r.closed_form_excess for r in rs])
            ax.plot(ratios, closed, "s:", alpha=0.7, label="closed form")
            ax.plot(bound_ratios, rel(bound), "k--", label="lower bound ½σ²O·Σλ↑(C)")
            ax.axvline(1.0, color="red", lw=1, label="M = D")
            ax.set_ylabel("(L(θ1) − L(θ*)) / L(θ*)" + (", log" if log else ""))
            if log:
                ax.set_yscale("log")
                ax.set_ylim(floor / 5, None)
                ax.set_xlabel("M / D  (distilled points / input dimension)")
            else:
                ax.set_title(f"{name}, D = {d}: one GD step from unseen θ0")
                ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_linear(cfg: LinearConfig) -> tuple[LinearProblem, list[SweepRow]]:
    """``datadistill linear``: the sweep over ``cfg.ratios`` on the synthetic or MNIST problem; writes
    ``cfg.json`` and ``cfg.plot`` when given. Returns the problem and its rows."""
    if cfg.json is not None:
        check_writable(cfg.json, "--json")
    if cfg.plot is not None:
        check_figure_path(cfg.plot, "--plot")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if cfg.data == "synthetic":
        # 32·D points of D float64 values, and a few D x D matrices beside them
        check_fits_in_memory(
            (32 + 8) * cfg.dim**2 * 8,
            f"the synthetic problem of --dim {cfg.dim}",
            "choose a smaller --dim",
        )
    if cfg.data == "mnist":
        problem = mnist_problem(cfg.dim, data_dir=cfg.data_dir, seed=cfg.seed)
    else:
        problem = synthetic_problem(cfg.dim, seed=cfg.seed)
    rows = sweep(
        problem,
        cfg.ratios,
        iterations=cfg.iterations,
        inits_per_iteration=cfg.inits,
        num_eval_inits=cfg.eval_inits,
        sigma=cfg.sigma,
        seed=cfg.seed,
    )
    if cfg.json is not None:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    if cfg.plot is not None:
        plot_sweep(rows, Path(cfg.plot), [problem])
    return problem, rows
