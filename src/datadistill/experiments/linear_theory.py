"""The linear case of dataset distillation in closed form (Wang et al. 2018, §3.3): problems, the bound, a construction.

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
exactly when M ≥ D. ``linear.py`` learns (x̃, ỹ, η̃) with the same meta-gradient machinery as image
distillation and compares the two over M / D.
See ``docs/linear.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from datadistill.types import Params

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
    sigma = init_sigma(problem, sigma)
    scale = math.sqrt(num_points / lr)
    points = [(scale * q, scale * q @ problem.theta_star) for q in candidates]
    return min(points, key=lambda xy: expected_excess(problem, *xy, lr, sigma))


def regression_loss(model: nn.Module, params: Params, x: Tensor, y: Tensor) -> Tensor:
    """ℓ(x, y; θ) = ‖f_θ(x) − y‖² / (2 M) for a batch x ``[M, D]``, real targets y ``[M, O]``."""
    out = functional_call(model, params, (x,))  # [M, O]
    return ((out - y) ** 2).sum() / (2 * x.shape[0])


def init_sigma(problem: LinearProblem, sigma: float | None) -> float:
    # LeCun-normal scale: θ0 entries ~ N(0, 1/D), so that x θ0 has unit scale when tr(C) = D.
    return 1.0 / math.sqrt(problem.dim) if sigma is None else sigma
