"""The linear case of dataset distillation, made runnable (Wang et al. 2018, §3.3).

Linear regression with quadratic loss on real data ``X`` ``[N, D]``, targets ``Y`` ``[N, O]``:

    L(θ) = ‖Xθ − Y‖² / (2N),      θ ∈ R^{D×O},      θ* = C⁻¹ XᵀY / N,      C = XᵀX / N.

One GD step from θ0 on ``M`` distilled points ``x̃`` ``[M, D]``, targets ``ỹ`` ``[M, O]``, step size η̃:

    θ1 = θ0 − η̃/M · x̃ᵀ(x̃θ0 − ỹ) = (I − A) θ0 + b,      A = η̃/M · x̃ᵀx̃,   b = η̃/M · x̃ᵀỹ.

θ1 = θ* for *every* θ0 needs A = I, so rank x̃ = D and M ≥ D. With M < D, θ0's component in the null
space of x̃ (dimension ≥ D − M) survives the step. Because L(θ) − L(θ*) = ½ tr((θ − θ*)ᵀ C (θ − θ*)),
for θ0 with i.i.d. N(0, σ²) entries the expected excess loss splits exactly into

    E[L(θ1)] − L(θ*) = ½ σ² O · tr((I − A) C (I − A)) + ½ tr((b − θ*)ᵀ C (b − θ*)),

where A vanishes on null(x̃) and maps into the row space of x̃. In an orthonormal basis [U V] with
V ``[D, k]`` spanning null(x̃), k ≥ D − M, this makes I − A = [[R, 0], [0, I_k]], so the first trace is
tr(R C_UU R) + tr(Vᵀ C V) ≥ tr(Vᵀ C V), and by Ky Fan's principle the smallest tr(Vᵀ C V) over
k-dimensional subspaces is the sum of C's k smallest eigenvalues. Dropping the bias term (≥ 0):

    E[L(θ1)] − L(θ*) ≥ ½ σ² O · Σ_{i=1}^{D−M} λ_i↑(C)         (= ½ σ² O (D − M) when C = I).

Nothing distilled with M < D can beat this. For C = I (and M ≥ O) it is attained exactly, by rows
spanning θ*'s columns; :func:`closed_form` builds that and a spectral construction, and reaches θ*
exactly when M ≥ D. :func:`distill_linear` learns (x̃, ỹ, η̃) with the same
meta-gradient machinery as image distillation, and :func:`sweep` compares the two over M / D.
See ``docs/linear.md``.
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
from torch.func import functional_call

from datadistill.config import LINEAR_RATIOS, LinearConfig
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
# Problems


@dataclass(frozen=True)
class LinearProblem:
    """A least-squares problem on real data, with its exact optimum.

    Attributes:
        name: ``"synthetic"`` or ``"mnist"``, for tables and plots.
        x: ``[N, D]`` real inputs.
        y: ``[N, O]`` real regression targets.
        second_moment: ``[D, D]`` C = XᵀX / N (the Hessian of L).
        theta_star: ``[D, O]`` θ* = C⁻¹ XᵀY / N, the minimiser of L.
        optimal_loss: L(θ*), the floor every excess loss is measured from.
    """

    name: str
    x: Tensor
    y: Tensor
    second_moment: Tensor
    theta_star: Tensor
    optimal_loss: float

    @property
    def dim(self) -> int:
        """D, the input dimension."""
        return self.x.shape[1]

    @property
    def out_dim(self) -> int:
        """O, the number of regression outputs."""
        return self.y.shape[1]

    def excess(self, theta: Tensor) -> Tensor:
        """L(θ) − L(θ*) = ½ tr((θ − θ*)ᵀ C (θ − θ*)) for θ ``[D, O]`` or a batch ``[K, D, O]``.

        Computed from C rather than as a difference of losses, which would cancel to exactly 0 in
        floating point once the excess falls below ~1e-16 · L(θ*); cheap for many θ at once.
        """
        delta = theta - self.theta_star  # [..., D, O]
        return 0.5 * (delta * (self.second_moment @ delta)).sum(dim=(-2, -1))

    def loss(self, theta: Tensor) -> Tensor:
        """L(θ) = ‖Xθ − Y‖² / (2N) for θ ``[D, O]`` or a batch ``[K, D, O]``, via :meth:`excess`."""
        return self.optimal_loss + self.excess(theta)


def _make_problem(name: str, x: Tensor, y: Tensor) -> LinearProblem:
    n = x.shape[0]
    second_moment = x.T @ x / n  # [D, D]
    if torch.linalg.matrix_rank(second_moment) < x.shape[1]:
        raise ValueError(
            f"{name}: XᵀX is singular (rank < D = {x.shape[1]}), so θ* is not unique; "
            "use more points or a smaller --dim"
        )
    theta_star = torch.linalg.solve(second_moment, x.T @ y / n)  # [D, O]
    optimal_loss = float(((x @ theta_star - y) ** 2).sum() / (2 * n))
    return LinearProblem(name, x, y, second_moment, theta_star, optimal_loss)


def synthetic_problem(
    dim: int,
    *,
    out_dim: int = 4,
    num_points: int | None = None,
    noise: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> LinearProblem:
    """Gaussian inputs and noisy linear targets: y = x θ_true + noise · ε.

    Inputs are x ~ N(0, I_D), so C ≈ I and the lower bound is close to ½ σ² O (D − M). The noise keeps
    L(θ*) > 0, so that the excess loss relative to the optimum is well defined.

    Args:
        dim: D.
        out_dim: O.
        num_points: N (default 32 D).
        noise: standard deviation of the target noise.
        seed: seeds x, θ_true and the noise.
        dtype: floating dtype of every tensor.

    Returns:
        The problem, with θ* the exact least-squares solution on these N points (not θ_true).
    """
    n = 32 * dim if num_points is None else num_points
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)  # [N, D]
    theta_true = torch.randn(dim, out_dim, generator=g, dtype=dtype) / math.sqrt(dim)  # [D, O]
    y = x @ theta_true + noise * torch.randn(n, out_dim, generator=g, dtype=dtype)  # [N, O]
    return _make_problem("synthetic", x, y)


def mnist_problem(
    dim: int,
    *,
    data_dir: str | Path | None = None,
    num_points: int | None = 10_000,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> LinearProblem:
    """MNIST training pixels projected to D dimensions, regressing one-hot labels (O = 10).

    A fixed random subset of ``num_points`` training images is the real data: the meta-loss is
    evaluated on all of it at every inner step, and 60,000 rows would make each meta-gradient ~6×
    slower for the same conclusions. C, θ* and L(θ*) are those of the subset, so everything stays
    exact. Pixels (normalised as the data registry does) are centred by their mean and projected
    with a fixed random orthonormal matrix P ``[784, D]`` (seeded), then scaled so that tr(C) = D,
    like the synthetic problem. A random projection rather than PCA keeps C's realistic, uneven
    spectrum: the bound then depends on its smallest eigenvalues, not on D − M alone.

    Args:
        dim: D (at most 784).
        data_dir: where the MNIST files are; default ``$DATADISTILL_DATA`` or the cache.
        num_points: N, the size of the subset (``None``: all 60,000).
        seed: seeds the subset and the projection.
        dtype: floating dtype of every tensor.
    """
    # Imported here so that the synthetic case needs nothing but torch.
    from datadistill.data import load_dataset

    data = load_dataset("mnist", "train", data_dir=data_dir)
    g = torch.Generator().manual_seed(seed)
    total = len(data.images)
    index = torch.randperm(total, generator=g)[: total if num_points is None else num_points]
    pixels = data.images[index].reshape(len(index), -1).to(dtype)  # [N, 784]
    if not 1 <= dim <= pixels.shape[1]:
        raise ValueError(f"--dim must be in 1..{pixels.shape[1]} for mnist, got {dim}")
    pixels = pixels - pixels.mean(dim=0)
    proj, _ = torch.linalg.qr(torch.randn(pixels.shape[1], dim, generator=g, dtype=dtype))
    x = pixels @ proj  # [N, D]
    x = x * math.sqrt(dim / float((x**2).sum(dim=1).mean()))  # tr(C) = D
    y = F.one_hot(data.labels[index].long(), num_classes=10).to(dtype)  # [N, 10]
    return _make_problem("mnist", x, y)


# --------------------------------------------------------------------------------------------
# Regression inner loop and meta-gradient


def regression_loss(model: nn.Module, params: Params, x: Tensor, y: Tensor) -> Tensor:
    """ℓ(x, y; θ) = ‖f_θ(x) − y‖² / (2 M) for a batch x ``[M, D]``, real targets y ``[M, O]``."""
    out = functional_call(model, params, (x,))  # [M, O]
    return ((out - y) ** 2).sum() / (2 * x.shape[0])


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
# Analysis: one step in closed form, expected excess, bound, construction


def one_step(theta0: Tensor, x: Tensor, y: Tensor, lr: float | Tensor) -> Tensor:
    """θ1 = θ0 − η̃/M · x̃ᵀ(x̃θ0 − ỹ) for θ0 ``[D, O]`` or a batch ``[K, D, O]``."""
    return theta0 - (lr / x.shape[0]) * (x.T @ (x @ theta0 - y))


def expected_excess(
    problem: LinearProblem, x: Tensor, y: Tensor, lr: float | Tensor, sigma: float
) -> float:
    """E_{θ0 ~ N(0, σ²)}[L(θ1)] − L(θ*) after one step on (x̃ ``[M, D]``, ỹ ``[M, O]``, η̃), exactly.

    = ½ σ² O · tr((I − A) C (I − A)) + ½ tr((b − θ*)ᵀ C (b − θ*)),   A = η̃/M x̃ᵀx̃,  b = η̃/M x̃ᵀỹ.
    """
    c = problem.second_moment
    m = x.shape[0]
    residual = torch.eye(problem.dim, dtype=c.dtype) - (lr / m) * (x.T @ x)  # I − A, [D, D]
    bias = (lr / m) * (x.T @ y) - problem.theta_star  # b − θ*, [D, O]
    variance_term = 0.5 * sigma**2 * problem.out_dim * torch.trace(residual @ c @ residual)
    bias_term = 0.5 * (bias * (c @ bias)).sum()
    return float(variance_term + bias_term)


def lower_bound(problem: LinearProblem, num_points: int, sigma: float) -> float:
    """½ σ² O · Σ_{i=1}^{D−M} λ_i↑(C): no (x̃, ỹ, η̃) with M points has a lower expected excess.

    Zero for M ≥ D. See the module docstring for the derivation.
    """
    k = max(problem.dim - num_points, 0)
    eigenvalues = torch.linalg.eigvalsh(problem.second_moment)  # ascending
    return float(0.5 * sigma**2 * problem.out_dim * eigenvalues[:k].sum())


def _spectral_rows(problem: LinearProblem, num_points: int) -> Tensor:
    """``[M, D]`` orthonormal rows: C's eigenvectors for its M largest eigenvalues."""
    _, vectors = torch.linalg.eigh(problem.second_moment)  # ascending eigenvalues
    return vectors[:, problem.dim - num_points :].T


def _aligned_rows(problem: LinearProblem, num_points: int) -> Tensor:
    """``[M, D]`` orthonormal rows spanning θ*'s columns, then C's top directions orthogonal to them.

    Needs M ≥ rank θ* (= O here); the rows span col(θ*) so that b = θ* is reachable (no bias).
    """
    d = problem.dim
    basis, _ = torch.linalg.qr(problem.theta_star)  # [D, O], orthonormal basis of col(θ*)
    perp = torch.eye(d, dtype=basis.dtype) - basis @ basis.T
    _, vectors = torch.linalg.eigh(perp @ problem.second_moment @ perp)  # ascending
    rest = vectors[:, d - (num_points - basis.shape[1]) :]  # top of C within col(θ*)⊥
    return torch.cat([basis, rest], dim=1).T


def closed_form(
    problem: LinearProblem,
    num_points: int,
    *,
    lr: float = 1.0,
    sigma: float | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Distilled points built from (C, θ*) for a step of size η̃: exact for M ≥ D, near-best for M < D.

    Every construction is x̃ = √(M/η̃) Q with Q ``[M, D]`` and ỹ = x̃ θ*, so that A = η̃/M x̃ᵀx̃ = QᵀQ
    and b = QᵀQ θ*.

    M ≥ D: Q is a random matrix with orthonormal columns (QᵀQ = I), so A = I, b = θ* and θ1 = θ*
    from every θ0.

    M < D: Q has orthonormal rows, A projects onto their span, and of two choices the one with the
    lower expected excess (at init scale σ) is returned:

    - spectral: C's top-M eigenvectors. The variance term meets :func:`lower_bound` with equality;
      the bias ½ Σ_{i ≤ D−M} λ_i↑ ‖u_iᵀθ*‖² of the discarded directions comes on top.
    - aligned (M ≥ O): θ*'s column space, then C's top directions orthogonal to it. No bias (b = θ*);
      the variance term is the bound's when C = I, so there the bound is attained exactly.

    Args:
        problem: the real data.
        num_points: M.
        lr: the step size η̃ the points are built for.
        sigma: init standard deviation σ used to choose between the M < D constructions
            (default 1/√D).
        seed: seeds Q for M ≥ D.

    Returns:
        (x̃ ``[M, D]``, ỹ ``[M, O]``).
    """
    d, dtype = problem.dim, problem.x.dtype
    if num_points >= d:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(num_points, d, generator=g, dtype=dtype))  # [M, D]
        candidates = [q]
    else:
        candidates = [_spectral_rows(problem, num_points)]
        if num_points >= problem.out_dim:
            candidates.append(_aligned_rows(problem, num_points))
    sigma = _init_sigma(problem, sigma)
    scale = math.sqrt(num_points / lr)
    points = [(scale * q, scale * q @ problem.theta_star) for q in candidates]
    return min(points, key=lambda xy: expected_excess(problem, *xy, lr, sigma))


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


def _init_sigma(problem: LinearProblem, sigma: float | None) -> float:
    # LeCun-normal scale: θ0 entries ~ N(0, 1/D), so that x θ0 has unit scale when tr(C) = D.
    return 1.0 / math.sqrt(problem.dim) if sigma is None else sigma


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
    sigma = _init_sigma(problem, sigma)
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
    sigma = _init_sigma(problem, sigma)
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
    sigma = _init_sigma(problem, sigma)
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
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
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
