"""Oracle tests for minibatch training on a distilled set and its random-truncated meta-gradient."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datadistill.augment import dsa_augment
from datadistill.minibatch_unroll import (
    Recipe,
    batch_order,
    batched_truncated_meta_grad,
    train,
    truncated_meta_grad,
    window_end,
)


def _tiny_convnet(seed: int = 0) -> nn.Module:
    # Seeded: the finite-difference checks hold at these weights, whatever other tests drew before.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _tiny_layers()


def _tiny_layers() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 4),
    ).double()


def _setup(soft: bool = False, m: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = _tiny_convnet(seed)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    images = torch.randn(m, 1, 6, 6, generator=g, dtype=torch.float64)
    labels = (
        torch.randn(m, 4, generator=g, dtype=torch.float64).softmax(1)
        if soft
        else (torch.arange(m) % 4)
    )
    real_x = torch.randn(16, 1, 6, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(0, 4, (16,), generator=g)

    def objective(model, theta):
        return F.cross_entropy(torch.func.functional_call(model, theta, (real_x,)), real_y)

    return model, params, images, labels, objective


def _torch_optimizer(name: str, module: nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(module.parameters(), lr=lr)
    if name == "momentum":
        return torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9)
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_train_matches_torch_optim_on_the_same_minibatches(optimizer):
    model, params, images, labels, _ = _setup()
    recipe = Recipe(optimizer=optimizer, updates=7, batch_size=3)
    order = batch_order(len(images), recipe, torch.Generator().manual_seed(1))
    lr = 0.05
    trained, state = train(model, params, images, labels, lr, recipe, order)

    reference = copy.deepcopy(model)
    opt = _torch_optimizer(optimizer, reference, lr)
    for batch in order:
        opt.zero_grad()
        F.cross_entropy(reference(images[batch]), labels[batch]).backward()
        opt.step()
    assert state.step == 7
    for name, p in reference.named_parameters():
        torch.testing.assert_close(trained[name], p.detach(), rtol=1e-10, atol=1e-12)


def test_batch_order_covers_every_image_once_per_epoch():
    order = batch_order(10, Recipe(updates=6, batch_size=4), torch.Generator().manual_seed(0))
    assert order.shape == (6, 4)
    flat = order.flatten()
    for epoch in range(2):
        assert sorted(flat[10 * epoch : 10 * epoch + 10].tolist()) == list(range(10))
    full = batch_order(10, Recipe(updates=3), torch.Generator().manual_seed(0))
    assert full.shape == (3, 10)


def test_window_end_is_uniform_over_its_range():
    recipe = Recipe(updates=10)
    g = torch.Generator().manual_seed(0)
    ends = {window_end(recipe, 4, g) for _ in range(400)}
    assert ends == set(range(4, 11))
    assert window_end(recipe, None, g) == 10
    assert window_end(recipe, 50, g) == 10


def _reference_window_grad(model, params, images, labels, objective, recipe, lr, seed, window):
    """Independent route: torch.optim for the prefix, its buffers as the state, then one graph. With
    ``recipe.augment == "dsa"`` every minibatch is augmented from the same generator, in update order."""
    g = torch.Generator().manual_seed(seed)

    def inputs(x, batch):
        return dsa_augment(x[batch], g) if recipe.augment == "dsa" else x[batch]

    end = window_end(recipe, window, g)
    begin = end - window
    order = batch_order(len(images), recipe, g)
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), lr=lr, momentum=0.9)
    for batch in order[:begin]:
        opt.zero_grad()
        F.cross_entropy(reference(inputs(images, batch)), labels[batch]).backward()
        opt.step()
    names = [n for n, _ in reference.named_parameters()]
    theta = {n: p.detach().clone().requires_grad_() for n, p in reference.named_parameters()}
    velocity = {
        n: opt.state[p]["momentum_buffer"].clone() if begin else torch.zeros_like(p)
        for n, p in zip(names, reference.parameters(), strict=True)
    }
    x = images.clone().requires_grad_()
    eta = torch.tensor(lr, dtype=torch.float64, requires_grad=True)
    for batch in order[begin:end]:
        logits = torch.func.functional_call(model, theta, (inputs(x, batch),))
        loss = F.cross_entropy(logits, labels[batch])
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
        velocity = {n: 0.9 * velocity[n] + gr for n, gr in zip(names, grads, strict=True)}
        theta = {n: theta[n] - eta * velocity[n] for n in names}
    return torch.autograd.grad(objective(model, theta), (x, eta))


@pytest.mark.parametrize("augment", ["none", "dsa"])
def test_truncated_meta_grad_equals_autograd_through_the_window_with_the_prefix_detached(augment):
    model, params, images, labels, objective = _setup()
    recipe = Recipe(optimizer="momentum", updates=9, batch_size=3, augment=augment)
    lr = 0.07
    got = truncated_meta_grad(
        model,
        params,
        images,
        labels,
        torch.tensor([lr], dtype=torch.float64),
        recipe,
        objective,
        window=3,
        generator=torch.Generator().manual_seed(5),
    )
    d_x, d_eta = _reference_window_grad(model, params, images, labels, objective, recipe, lr, 5, 3)
    torch.testing.assert_close(got.images, d_x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got.lrs, d_eta.reshape(1), rtol=1e-9, atol=1e-12)
    assert got.labels is None


@pytest.mark.parametrize(
    "optimizer, augment",
    [("sgd", "none"), ("momentum", "none"), ("adam", "none"), ("momentum", "dsa")],
)
def test_full_window_meta_grad_matches_finite_differences(optimizer, augment):
    model, params, images, labels, objective = _setup(soft=True, m=4)
    recipe = Recipe(optimizer=optimizer, updates=4, batch_size=2, augment=augment)
    lr = torch.tensor([0.05], dtype=torch.float64)

    def loss_at(x, y, eta):
        g = torch.Generator().manual_seed(
            3
        )  # the same draws as the meta-gradient: order, then augmentations
        order = batch_order(len(x), recipe, g)
        theta, _ = train(model, params, x, y, eta.reshape(()), recipe, order, generator=g)
        return objective(model, theta).item()

    got = truncated_meta_grad(
        model,
        params,
        images,
        labels,
        lr,
        recipe,
        objective,
        window=None,
        generator=torch.Generator().manual_seed(3),
    )
    eps = 1e-6
    for tensor, grad, index in (
        (images, got.images, (1, 0, 2, 3)),
        (labels, got.labels, (2, 1)),
        (lr, got.lrs, (0,)),
    ):
        plus, minus = tensor.clone(), tensor.clone()
        plus[index] += eps
        minus[index] -= eps
        args = {"x": images, "y": labels, "eta": lr}
        key = "x" if tensor is images else "y" if tensor is labels else "eta"
        numeric = (loss_at(**{**args, key: plus}) - loss_at(**{**args, key: minus})) / (2 * eps)
        assert grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def _peak_saved_tensors(fn) -> int:
    """Most autograd-saved tensors alive at once while ``fn`` runs (exact, unlike RSS)."""
    live, peak = [0], [0]

    class Saved:
        def __init__(self, tensor):
            self.tensor = tensor
            live[0] += 1
            peak[0] = max(peak[0], live[0])

        def __del__(self):
            live[0] -= 1

    with torch.autograd.graph.saved_tensors_hooks(Saved, lambda saved: saved.tensor):
        fn()
    return peak[0]


def test_memory_does_not_grow_with_the_number_of_updates():
    model, params, images, labels, objective = _setup()
    lr = torch.tensor([0.05], dtype=torch.float64)

    def peak(updates: int, window: int | None) -> int:
        # With a window W the graph holds W updates wherever e falls; e only moves the graph-free prefix.
        recipe = Recipe(optimizer="adam", updates=updates, batch_size=4)
        return _peak_saved_tensors(
            lambda: truncated_meta_grad(
                model,
                params,
                images,
                labels,
                lr,
                recipe,
                objective,
                window=window,
                generator=torch.Generator().manual_seed(0),
            )
        )

    short, long = peak(6, 3), peak(60, 3)
    assert long == short
    full = peak(12, None)
    assert full > 3 * short  # the full unroll does keep every update's graph


def test_unknown_inner_optimizer_is_one_clear_line():
    with pytest.raises(ValueError, match="--inner-optimizer must be one of sgd, momentum, adam"):
        Recipe(optimizer="rmsprop")


def test_augmented_training_draws_its_transforms_from_the_generator():
    model, params, images, labels, _ = _setup()
    plain = Recipe(updates=4, batch_size=4)
    augmented = Recipe(updates=4, batch_size=4, augment="dsa")
    order = batch_order(len(images), plain, torch.Generator().manual_seed(0))

    def trained(recipe, seed):
        theta, _ = train(
            model,
            params,
            images,
            labels,
            0.1,
            recipe,
            order,
            generator=torch.Generator().manual_seed(seed),
        )
        return torch.cat([p.flatten() for p in theta.values()])

    assert torch.equal(
        trained(augmented, 1), trained(augmented, 1)
    )  # repeatable: resumes bit-exact
    assert not torch.allclose(trained(augmented, 1), trained(augmented, 2))
    assert not torch.allclose(trained(augmented, 1), trained(plain, 1))
    with pytest.raises(ValueError, match="draws its transforms from a generator"):
        train(model, params, images, labels, 0.1, augmented, order)


def test_unknown_inner_augmentation_is_one_clear_line():
    with pytest.raises(
        ValueError, match="--inner-augment must be one of none, dsa, dc, got 'flip'"
    ):
        Recipe(augment="flip")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize(
    ("soft", "window", "formation"), [(False, None, 1), (True, 3, 1), (True, 4, 2)]
)
def test_batched_meta_grad_equals_the_sum_over_inits_that_share_the_draws(
    optimizer, soft, window, formation
):
    model, params, images, labels, objective = _setup(soft=soft)
    g = torch.Generator().manual_seed(5)
    inits = [params] + [
        {n: p + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
        for _ in range(2)
    ]
    recipe = Recipe(optimizer=optimizer, updates=6, batch_size=5)
    lr = torch.tensor([0.05], dtype=torch.float64)
    stored = images.unsqueeze(0)  # [1, M, C, H, W], as distillation stores them
    targets = labels.unsqueeze(0)
    shared = torch.Generator().manual_seed(11)
    one_by_one = [
        truncated_meta_grad(
            model, p, stored, targets, lr, recipe, objective, window=window,
            generator=copy.deepcopy(shared), formation=formation,
        )
        for p in inits
    ]  # fmt: skip
    batched = batched_truncated_meta_grad(
        model, inits, stored, targets, lr, recipe, objective, window=window,
        generator=shared, formation=formation,
    )  # fmt: skip
    expected = [sum(parts) for parts in zip(*(m.tensors() for m in one_by_one), strict=True)]
    assert all(
        torch.allclose(a, b, rtol=1e-9, atol=1e-12)
        for a, b in zip(batched.tensors(), expected, strict=True)
    )
    assert batched.images.shape == stored.shape and (batched.labels is not None) == soft


def test_batched_meta_grad_refuses_augmentation_in_one_line():
    model, params, images, labels, objective = _setup()
    with pytest.raises(ValueError, match="--vmap-inits .* --inner-augment"):
        batched_truncated_meta_grad(
            model, [params], images, labels, torch.tensor(0.1, dtype=torch.float64),
            Recipe(updates=2, augment="dsa"), objective, window=None,
            generator=torch.Generator(),
        )  # fmt: skip
