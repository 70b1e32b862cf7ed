"""Oracle tests for the unrolled inner loop and both meta-gradient strategies."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datadistill.unroll import Steps, batched_meta_grad, inner_loss, meta_grad, unroll


def _tiny_convnet() -> nn.Module:
    # Small but with every ingredient that matters for second derivatives: conv, ReLU, pooling, linear.
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 4),
    ).double()


def _setup(learn_labels: bool, steps: int = 3, epochs: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = _tiny_convnet()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    per_step, k = 4, 4
    images = torch.randn(steps, per_step, 1, 6, 6, generator=g, dtype=torch.float64)
    if learn_labels:
        labels = torch.randn(steps, per_step, k, generator=g, dtype=torch.float64)
    else:
        labels = torch.arange(per_step).repeat(steps, 1) % k
    lrs = torch.rand(steps * epochs, generator=g, dtype=torch.float64) * 0.2 + 0.05
    real_x = torch.randn(16, 1, 6, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(0, k, (16,), generator=g)

    def objective(model, theta):
        return F.cross_entropy(torch.func.functional_call(model, theta, (real_x,)), real_y)

    return model, params, Steps(images, labels, lrs), objective


def test_unroll_with_constant_lr_matches_torch_sgd():
    model, params, steps, _ = _setup(learn_labels=False)
    steps.lrs = torch.full_like(steps.lrs, 0.1)
    trajectory = unroll(model, params, steps, create_graph=False)

    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for t in range(steps.num_updates):
        s = t % steps.num_steps
        opt.zero_grad()
        F.cross_entropy(reference(steps.images[s]), steps.labels[s]).backward()
        opt.step()
    assert len(trajectory) == steps.num_updates + 1
    for name, p in reference.named_parameters():
        torch.testing.assert_close(trajectory[-1][name], p.detach(), rtol=1e-12, atol=1e-12)


def test_unroll_does_not_mutate_inputs():
    model, params, steps, _ = _setup(learn_labels=False)
    before = {n: p.clone() for n, p in params.items()}
    module_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    unroll(model, params, steps, create_graph=True)
    for n in params:
        assert torch.equal(params[n], before[n])
        assert torch.equal(dict(model.named_parameters())[n].detach(), module_before[n])


@pytest.mark.parametrize("learn_labels", [False, True])
def test_reverse_equals_autograd_in_float64(learn_labels):
    model, params, steps, objective = _setup(learn_labels)
    a = meta_grad(model, params, steps, objective, method="autograd")
    r = meta_grad(model, params, steps, objective, method="reverse")
    torch.testing.assert_close(r.loss, a.loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(r.images, a.images, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(r.lrs, a.lrs, rtol=1e-8, atol=1e-12)
    if learn_labels:
        torch.testing.assert_close(r.labels, a.labels, rtol=1e-8, atol=1e-12)
    else:
        assert a.labels is None and r.labels is None
    assert a.images.abs().sum() > 0 and a.lrs.abs().sum() > 0


@pytest.mark.parametrize("method", ["autograd", "reverse"])
def test_meta_grad_matches_finite_differences(method):
    model, params, steps, objective = _setup(learn_labels=True, steps=2, epochs=2)

    def loss_at(s: Steps) -> float:
        return objective(model, unroll(model, params, s, create_graph=False)[-1]).item()

    grads = meta_grad(model, params, steps, objective, method=method)
    g = torch.Generator().manual_seed(1)
    eps = 1e-6
    for field in ("images", "lrs", "labels"):
        base = getattr(steps, field)
        direction = torch.randn(base.shape, generator=g, dtype=base.dtype)
        plus = Steps(**{**vars(steps), field: base + eps * direction})
        minus = Steps(**{**vars(steps), field: base - eps * direction})
        numeric = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        analytic = (getattr(grads, field) * direction).sum().item()
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9), field


def test_unknown_method_is_a_clear_error():
    model, params, steps, objective = _setup(learn_labels=False)
    with pytest.raises(ValueError, match="autograd"):
        meta_grad(model, params, steps, objective, method="backprop")


@pytest.mark.parametrize("learn_labels", [False, True])
def test_batched_meta_grad_equals_the_sum_over_inits(learn_labels):
    model, params, steps, objective = _setup(learn_labels)
    g = torch.Generator().manual_seed(3)
    inits = [
        {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}
        for _ in range(3)
    ]
    one_by_one = [meta_grad(model, p, steps, objective) for p in inits]
    batched = batched_meta_grad(model, inits, steps, objective)
    for got, *want in zip(batched.tensors(), *(r.tensors() for r in one_by_one), strict=True):
        torch.testing.assert_close(got, sum(want), rtol=1e-9, atol=1e-12)


def test_label_targets_from_stored_labels():
    from datadistill.artifacts import label_targets

    classes = torch.tensor([[0, 3]])
    assert label_targets(classes, "free") is classes  # classes are classes under any kind
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    assert torch.allclose(label_targets(logits, "softmax").sum(-1), torch.ones(1, 2))
    assert label_targets(logits, "free") is logits
    with pytest.raises(ValueError, match="unknown label targets 'raw'"):
        label_targets(logits, "raw")


def test_soft_targets_are_used_as_they_are():
    # −Σ y log softmax(f), averaged over the batch, with y not summing to one.
    model = nn.Linear(3, 2)
    params = dict(model.named_parameters())
    x, y = torch.randn(4, 3), torch.tensor([[2.0, -0.5]] * 4)
    logits = model(x)
    expected = -(y * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(inner_loss(model, params, x, y), expected)
