"""Ordinary training: train_adam and train_networks equal torch.optim on the module itself, batched or not."""

import math

import pytest
import torch
import torch.nn.functional as F

from datadistill.models import build_model, init_params
from datadistill.seeds import generator
from datadistill.train import (
    FieldRecipe,
    _shuffle_generator,
    cosine,
    train_adam,
    train_as_dataset,
    train_networks,
)


def _sequential_oracle(net, init, images, labels, seed, *, epochs, batch_size, lr, betas):
    """An independent reference: the module itself, torch.optim.Adam and the same batch order."""
    net.load_state_dict({n: p.clone() for n, p in init.items()})
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
    total = epochs * math.ceil(len(labels) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine(step, total))
    gen = _shuffle_generator(seed)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            F.cross_entropy(net(images[idx]), labels[idx]).backward()
            opt.step()
            sched.step()
    return {n: p.detach().clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("model, shape", [("mlp", (1, 6, 6)), ("lenet", (1, 12, 12))])
def test_vmap_training_equals_sequential_training(model, shape):
    torch.manual_seed(0)
    images = torch.randn(
        70, *shape, dtype=torch.float64
    )  # 70 = 3 batches of 32, the last one short
    labels = torch.randint(10, (70,))
    net = build_model(model, shape, 10).double()
    seeds = [3, 4, 5]
    inits = [
        {
            n: p.double()
            for n, p in init_params(net, "xavier", generator(s, "pretrain-init")).items()
        }
        for s in seeds
    ]
    recipe = dict(epochs=2, batch_size=32, lr=1e-2, betas=(0.5, 0.999))
    batched = train_networks(net, inits, images, labels, seeds, method="vmap", **recipe)
    looped = train_networks(net, inits, images, labels, seeds, method="loop", **recipe)
    for g, seed in enumerate(seeds):
        oracle = _sequential_oracle(net, inits[g], images, labels, seed, **recipe)
        moved = False
        for n, p in oracle.items():
            torch.testing.assert_close(batched[g][n], p, rtol=1e-9, atol=1e-11)
            torch.testing.assert_close(looped[g][n], p, rtol=1e-9, atol=1e-11)
            moved |= not torch.allclose(p, inits[g][n])
        assert moved, "training did not change the parameters: the comparison would be vacuous"


def test_train_adam_is_adam_with_a_cosine_lr_schedule_exactly():
    """The full-data baseline's recipe: bit for bit what torch.optim.Adam + LambdaLR give on the module."""
    torch.manual_seed(0)
    images, labels = torch.randn(50, 1, 6, 6), torch.randint(10, (50,))
    net = build_model("mlp", (1, 6, 6), 10)
    init = init_params(net, "xavier", torch.Generator().manual_seed(1))
    recipe = dict(epochs=2, batch_size=16, lr=1e-2)
    trained = train_adam(
        net, init, images, labels, generator=torch.Generator().manual_seed(7), **recipe
    )
    net.load_state_dict({n: p.clone() for n, p in init.items()})
    opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
    total = recipe["epochs"] * math.ceil(len(labels) / recipe["batch_size"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine(step, total))
    gen = torch.Generator().manual_seed(7)
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(labels), recipe["batch_size"]):
            idx = order[start : start + recipe["batch_size"]]
            opt.zero_grad()
            F.cross_entropy(net(images[idx]), labels[idx]).backward()
            opt.step()
            sched.step()
    for n, p in net.named_parameters():
        assert torch.equal(trained[n], p.detach()), n
        assert not torch.equal(trained[n], init[n]), n
    assert all(not t.requires_grad for t in trained.values())


def test_field_recipe_reports_the_schedule_it_trains_with():
    """One epoch has no half-way: training keeps the lr, and the report must not claim a division."""
    torch.manual_seed(0)
    images, labels = torch.randn(8, 1, 6, 6, dtype=torch.float64), torch.randint(3, (8,))
    net = build_model("mlp", (1, 6, 6), 3).double()
    init = {n: p.detach().clone() for n, p in net.named_parameters()}
    recipe = FieldRecipe(epochs=1, lr=0.05)
    trained = train_as_dataset(net, images, labels, init, recipe)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    F.cross_entropy(net(images), labels).backward()  # one batch: the order does not matter
    opt.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(trained[name], p.detach(), rtol=1e-12, atol=1e-12)
    assert "lr 0.05 constant," in recipe.describe() and "/10" not in recipe.describe()
    assert "lr 0.01 /10 at epoch 150," in FieldRecipe().describe()


def test_on_epoch_is_told_every_epoch_after_it_and_changes_nothing():
    torch.manual_seed(0)
    images, labels = torch.randn(10, 1, 6, 6, dtype=torch.float64), torch.randint(3, (10,))
    net = build_model("mlp", (1, 6, 6), 3).double()
    init = {n: p.detach().clone() for n, p in net.named_parameters()}
    recipe = FieldRecipe(epochs=4, batch_size=4)  # 3 minibatches an epoch
    seen: list[int] = []
    told = train_as_dataset(
        net, images, labels, init, recipe, generator=generator(1), on_epoch=seen.append
    )
    quiet = train_as_dataset(net, images, labels, init, recipe, generator=generator(1))
    assert seen == [1, 2, 3, 4]
    assert all(torch.equal(told[n], quiet[n]) for n in told)
