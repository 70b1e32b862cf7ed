"""objectives.py: the task loss and targeted poisoning as functions of (model, θ_T)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datadistill.models import build_model, init_params
from datadistill.objectives import make_objective, poison_labels, poison_objective, task_objective


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(0))
    images = torch.randn(40, 1, 8, 8)
    labels = torch.arange(40) % 10
    return model, params, images, labels


def test_task_objective_is_cross_entropy_on_the_real_batch(setup):
    model, params, images, labels = setup
    expected = F.cross_entropy(torch.func.functional_call(model, params, (images,)), labels)
    assert torch.allclose(task_objective(images, labels)(model, params), expected)


def test_task_objective_is_differentiable_in_the_parameters(setup):
    model, params, images, labels = setup
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    loss = task_objective(images, labels)(model, params)
    grads = torch.autograd.grad(loss, list(params.values()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_poison_labels_relabel_only_the_source_class():
    labels = torch.tensor([0, 1, 2, 3, 3, 9])
    assert poison_labels(labels, 3, 8).tolist() == [0, 1, 2, 8, 8, 9]


def test_poison_objective_at_weight_one_is_the_task_loss_on_relabelled_data(setup):
    model, params, images, labels = setup
    poisoned = poison_objective(images, labels, 3, 8)(model, params)
    relabelled = task_objective(images, poison_labels(labels, 3, 8))(model, params)
    assert torch.allclose(poisoned, relabelled)


def test_source_weight_is_a_weighted_mean_over_images(setup):
    model, params, images, labels = setup
    w = 5.0
    logits = torch.func.functional_call(model, params, (images,))
    per_image = F.cross_entropy(logits, poison_labels(labels, 3, 8), reduction="none")
    weights = torch.where(labels == 3, w, 1.0)
    expected = (weights * per_image).sum() / weights.sum()
    got = poison_objective(images, labels, 3, 8, source_weight=w)(model, params)
    assert torch.allclose(got, expected)
    assert not torch.allclose(got, poison_objective(images, labels, 3, 8)(model, params))


def test_make_objective_builds_by_name_and_rejects_bad_input(setup):
    model, params, images, labels = setup
    assert torch.allclose(
        make_objective("task", images, labels)(model, params),
        task_objective(images, labels)(model, params),
    )
    with pytest.raises(ValueError, match="--source-class"):
        make_objective("poison", images, labels)
    with pytest.raises(ValueError, match="unknown objective 'taks'"):
        make_objective("taks", images, labels)
