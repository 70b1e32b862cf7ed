"""Tests for the linear case (Wang et al. 2018, §3.3): exactness, the M ≥ D bound, the machinery."""

import json
import math
import os

import pytest
import torch
from torch import nn

from datadistill.cli import main
from datadistill.experiments.linear import (
    _mean_meta_grad,
    closed_form,
    distill_linear,
    evaluate_linear,
    expected_excess,
    lower_bound,
    mnist_problem,
    one_step,
    regression_loss,
    regression_unroll,
    synthetic_problem,
)
from datadistill.experiments.linear import _regression_meta_grad as regression_meta_grad
from datadistill.experiments.linear_theory import _make_problem, _spectral_rows
from datadistill.unroll import Steps

D = 16
SIGMA = 1 / math.sqrt(D)


@pytest.fixture(autouse=True)
def _one_thread():
    # These matrices are tiny (D = 16): intra-op threads only add synchronisation, and on a busy
    # 2-core machine they made the learned-distillation tests ~10× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(D, seed=0)


def test_problem_loss_and_optimum_match_the_data(problem):
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(5, D, problem.out_dim, generator=g, dtype=torch.float64)  # [K, D, O]
    direct = ((problem.x @ theta - problem.y) ** 2).sum(dim=(-2, -1)) / (2 * len(problem.x))
    torch.testing.assert_close(problem.loss(theta), direct, rtol=1e-12, atol=0)
    # θ* is a stationary point of L: Xᵀ(Xθ* − Y) = 0.
    grad = problem.x.T @ (problem.x @ problem.theta_star - problem.y) / len(problem.x)
    assert grad.abs().max() < 1e-12
    assert problem.optimal_loss > 0.1  # the target noise keeps relative excess well defined


def test_regression_unroll_is_the_paper_update(problem):
    # Oracle: the functional nn.Linear step equals θ1 = θ0 − η̃/M x̃ᵀ(x̃θ0 − ỹ) in matrix form.
    g = torch.Generator().manual_seed(2)
    m, o = 6, problem.out_dim
    x = torch.randn(m, D, generator=g, dtype=torch.float64)
    y = torch.randn(m, o, generator=g, dtype=torch.float64)
    theta0 = torch.randn(D, o, generator=g, dtype=torch.float64)
    model = nn.Linear(D, o, bias=False).double()
    steps = Steps(x[None], y[None], torch.tensor([0.3], dtype=torch.float64))
    traj = regression_unroll(model, {"weight": theta0.T}, steps, create_graph=False)
    assert len(traj) == 2
    torch.testing.assert_close(traj[1]["weight"].T, one_step(theta0, x, y, 0.3), rtol=1e-12, atol=0)


def test_regression_meta_grad_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    d, m, o = 3, 2, 2
    model = nn.Linear(d, o, bias=False).double()
    real_x = torch.randn(20, d, generator=g, dtype=torch.float64)
    real_y = torch.randn(20, o, generator=g, dtype=torch.float64)
    params0 = {"weight": torch.randn(o, d, generator=g, dtype=torch.float64)}
    # Two steps × two epochs, so the chain through several updates is exercised too.
    steps = Steps(
        images=torch.randn(2, m, d, generator=g, dtype=torch.float64),
        labels=torch.randn(2, m, o, generator=g, dtype=torch.float64),
        lrs=torch.tensor([0.2, 0.3, 0.1, 0.25], dtype=torch.float64),
    )

    def objective(model, params):
        return regression_loss(model, params, real_x, real_y)

    def meta_loss(s: Steps) -> float:
        theta_T = regression_unroll(model, params0, s, create_graph=False)[-1]
        return objective(model, theta_T).item()

    mg = regression_meta_grad(model, params0, steps, objective)
    eps = 1e-6
    for field, grad in (("images", mg.images), ("labels", mg.labels), ("lrs", mg.lrs)):
        base = getattr(steps, field)
        for i in range(base.numel()):
            plus, minus = base.clone(), base.clone()
            plus.view(-1)[i] += eps
            minus.view(-1)[i] -= eps
            fd = (
                meta_loss(Steps(**{**vars(steps), field: plus}))
                - meta_loss(Steps(**{**vars(steps), field: minus}))
            ) / (2 * eps)
            assert grad.reshape(-1)[i].item() == pytest.approx(fd, rel=1e-6, abs=1e-9), field


def test_batched_inits_equal_separate_meta_grads(problem):
    # distill_linear runs K inits as column blocks of one wide model; that must be exactly the
    # mean of K separate meta-gradients (one nn.Linear(D, O) per init).
    g = torch.Generator().manual_seed(9)
    m, o, k = 5, problem.out_dim, 3
    steps = Steps(
        images=torch.randn(1, m, D, generator=g, dtype=torch.float64),
        labels=torch.randn(1, m, o, generator=g, dtype=torch.float64),
        lrs=torch.tensor([0.4], dtype=torch.float64),
    )
    theta0 = torch.randn(k, D, o, generator=g, dtype=torch.float64)
    model = nn.Linear(D, o, bias=False).double()

    def objective(model, params):
        return regression_loss(model, params, problem.x, problem.y)

    single = [regression_meta_grad(model, {"weight": t.T}, steps, objective) for t in theta0]
    batched = _mean_meta_grad(problem, steps, theta0)
    for field in ("images", "labels", "lrs", "loss"):
        mean = torch.stack([getattr(mg, field) for mg in single]).mean(dim=0)
        torch.testing.assert_close(getattr(batched, field), mean, rtol=1e-12, atol=1e-14)


def test_expected_excess_formula_matches_monte_carlo(problem):
    # The bound rests on this variance + bias decomposition; check it against sampled inits.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, D, generator=g, dtype=torch.float64)
    y = torch.randn(8, problem.out_dim, generator=g, dtype=torch.float64)
    ev = evaluate_linear(problem, x, y, 0.7, num_inits=40_000, sigma=SIGMA)
    assert ev.expected == pytest.approx(ev.excess_mean, rel=0.02)


@pytest.mark.parametrize("factor", [1, 2])
def test_closed_form_reaches_the_optimum_from_any_init(problem, factor):
    m = factor * D
    x, y = closed_form(problem, m, lr=0.5, seed=5)
    g = torch.Generator().manual_seed(6)
    # Inits far beyond the training scale too: the construction must not depend on θ0 at all.
    theta0 = 10.0 * torch.randn(50, D, problem.out_dim, generator=g, dtype=torch.float64)
    theta1 = one_step(theta0, x, y, 0.5)
    assert (theta1 - problem.theta_star).abs().max() < 1e-10
    rel = problem.excess(theta1) / problem.optimal_loss
    assert rel.max() < 1e-10
    assert expected_excess(problem, x, y, 0.5, SIGMA) < 1e-10


@pytest.mark.parametrize("m", [4, 8, 12])
def test_spectral_construction_meets_the_bound_up_to_its_bias(problem, m):
    # C's top-M eigenvectors: the variance term equals the bound, and only the bias of the D − M
    # discarded directions comes on top, so the bound cannot be raised for this C's spectrum.
    x = math.sqrt(m) * _spectral_rows(problem, m)
    y = x @ problem.theta_star
    eigenvalues, vectors = torch.linalg.eigh(problem.second_moment)  # ascending
    low = vectors[:, : D - m]  # [D, D − M]
    bias = 0.5 * (eigenvalues[: D - m, None] * (low.T @ problem.theta_star) ** 2).sum()
    bound = lower_bound(problem, m, SIGMA)
    assert bound > 0
    assert expected_excess(problem, x, y, 1.0, SIGMA) == pytest.approx(
        bound + float(bias), rel=1e-9
    )
    assert lower_bound(problem, D, SIGMA) == 0.0
    # closed_form picks the better construction, never a worse one.
    cx, cy = closed_form(problem, m, sigma=SIGMA)
    assert expected_excess(problem, cx, cy, 1.0, SIGMA) <= expected_excess(
        problem, x, y, 1.0, SIGMA
    )


@pytest.mark.parametrize("m", [4, 8, 12])
def test_bound_is_attained_exactly_for_isotropic_data(m):
    # With C = I exactly, rows spanning θ*'s columns give E[excess] = ½ σ² O (D − M): the bound is
    # tight, so a test that M < D "cannot" do better is a statement about the optimum, not slack.
    g = torch.Generator().manual_seed(8)
    n = 64
    q, _ = torch.linalg.qr(torch.randn(n, D, generator=g, dtype=torch.float64))
    x_real = math.sqrt(n) * q  # [N, D], XᵀX / N = I
    y_real = torch.randn(n, 4, generator=g, dtype=torch.float64)
    iso = _make_problem("isotropic", x_real, y_real)
    torch.testing.assert_close(iso.second_moment, torch.eye(D, dtype=torch.float64))
    bound = lower_bound(iso, m, SIGMA)
    assert bound == pytest.approx(0.5 * SIGMA**2 * 4 * (D - m), rel=1e-12)
    x, y = closed_form(iso, m, lr=0.7, sigma=SIGMA)
    assert expected_excess(iso, x, y, 0.7, SIGMA) == pytest.approx(bound, rel=1e-9)


def test_no_random_points_beat_the_bound(problem):
    g = torch.Generator().manual_seed(7)
    m = D // 2
    bound = lower_bound(problem, m, SIGMA)
    for _ in range(50):
        x = torch.randn(m, D, generator=g, dtype=torch.float64) * torch.rand(1, generator=g) * 3
        y = torch.randn(m, problem.out_dim, generator=g, dtype=torch.float64)
        lr = float(torch.rand(1, generator=g)) * 2
        assert expected_excess(problem, x, y, lr, SIGMA) >= bound


def test_learned_m_equals_d_reaches_the_optimum_on_unseen_inits(problem):
    learned = distill_linear(problem, D, iterations=250, inits_per_iteration=4, seed=0)
    ev = evaluate_linear(problem, learned.x, learned.y, learned.lr, num_inits=2000, seed=99)
    # Every held-out init lands within 1e-3 of the optimal loss (relative) after one step.
    assert ev.relative_max < 1e-3, ev
    assert learned.losses[-1] < learned.losses[0]


def test_learned_half_d_cannot_beat_the_bound(problem):
    m = D // 2
    learned = distill_linear(problem, m, iterations=250, inits_per_iteration=4, seed=0)
    ev = evaluate_linear(problem, learned.x, learned.y, learned.lr, num_inits=4000, seed=99)
    bound = lower_bound(problem, m, SIGMA)
    assert ev.expected >= bound
    assert ev.excess_mean > bound, ev  # on unseen inits, not only in expectation
    assert ev.relative_mean > 1.0  # the excess is larger than the optimal loss itself
    # …and the optimiser did its job: within 10% of the spectral construction, so the gap to the
    # optimum is the bound's doing, not a poorly trained distilled set.
    cx, cy = closed_form(problem, m, sigma=SIGMA)
    assert ev.expected < 1.1 * expected_excess(problem, cx, cy, 1.0, SIGMA)


def test_cli_runs_the_sweep_and_writes_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "rows.json", tmp_path / "plot.png"
    status = main(
        ["linear", "--dim", "4", "--ratios", "0.5", "1", "--iterations", "30"]
        + ["--eval-inits", "50", "--json", str(out), "--plot", str(png)]
    )
    assert status == 0
    rows = json.loads(out.read_text())
    assert [r["num_points"] for r in rows] == [2, 4]
    assert rows[0]["bound"] > 0 and rows[1]["bound"] == 0
    assert png.stat().st_size > 1000
    assert "| synthetic | 4 | 2 | 0.50 |" in capsys.readouterr().out


def test_mnist_problem_shapes():
    data_dir = os.environ.get("DATADISTILL_DATA")
    if not data_dir:
        pytest.skip("set $DATADISTILL_DATA to a folder with the MNIST files to run this test")
    p = mnist_problem(8, data_dir=data_dir, num_points=2000)
    assert p.x.shape == (2000, 8) and p.y.shape == (2000, 10)
    assert torch.trace(p.second_moment).item() == pytest.approx(8.0)
    assert torch.equal(p.y.sum(dim=1), torch.ones(2000, dtype=p.y.dtype))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ratios", "0.5", "-1"], "--ratios are values of M / D and must be positive numbers"),
        (["--ratios", "nan"], "--ratios are values of M / D"),
        (["--sigma", "-1"], "--sigma must be a positive number, got -1.0"),
        (["--inits", "0"], "--inits must be a positive integer, got 0"),
        (["--eval-inits", "0"], "--eval-inits must be a positive integer, got 0"),
        (["--iterations", "-2"], "--iterations must be a positive integer, got -2"),
        (["--threads", "0"], "--threads must be a positive integer, got 0"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(capsys, flags, message):
    assert main(["linear", "--dim", "4", *flags]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
