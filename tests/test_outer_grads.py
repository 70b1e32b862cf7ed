"""An outer iteration's draws and meta-gradients: the real batch, each rank's θ_0, the decoded replay."""

import pytest
import torch

from datadistill import DistillConfig
from datadistill.formation import decode_steps
from datadistill.inits import InitDistribution
from datadistill.models import build_model
from datadistill.outer_grads import check_real_batch, draw_inits, real_batch, through_decode
from datadistill.unroll import Steps, meta_grad, unroll


@pytest.mark.parametrize("method", ["autograd", "reverse"])
def test_replay_meta_gradient_through_the_decoding_equals_autograd(method):
    """The replay protocol with F = 2: the meta-gradient taken on the decoded schedule and pulled back to the
    stored images and soft targets equals autograd through ``decode_steps`` and the unroll (float64)."""
    g = torch.Generator().manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(32, 4)
    ).double()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    real_x = torch.randn(10, 1, 6, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(0, 4, (10,), generator=g)

    def objective(model, theta):
        logits = torch.func.functional_call(model, theta, (real_x,))
        return torch.nn.functional.cross_entropy(logits, real_y)

    stored = torch.randn(2, 2, 1, 6, 6, generator=g, dtype=torch.float64)  # 2 steps of 2 images
    targets = torch.rand(2, 2, 4, generator=g, dtype=torch.float64)  # learned soft targets
    lrs = torch.tensor([0.3, 0.2, 0.25, 0.1], dtype=torch.float64)  # 2 steps x 2 epochs
    got = through_decode(
        Steps(stored, targets, lrs),
        2,
        lambda decoded: [meta_grad(model, params, decoded, objective, method=method)],
    )[0]
    x, y, lr = (t.clone().requires_grad_() for t in (stored, targets, lrs))
    theta = unroll(model, params, decode_steps(Steps(x, y, lr), 2), create_graph=True)[-1]
    loss = objective(model, theta)
    want = torch.autograd.grad(loss, (x, y, lr))
    assert got.images.shape == stored.shape and got.labels.shape == targets.shape
    for have, expected in zip((got.images, got.labels, got.lrs), want, strict=True):
        torch.testing.assert_close(have, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got.loss, loss.detach(), rtol=1e-12, atol=0)


def test_real_batch_per_rank_takes_disjoint_blocks_of_one_permutation():
    shared = DistillConfig(dataset="digits", batch_size=64, seed=3)
    per_rank = DistillConfig(dataset="digits", batch_size=64, seed=3, batch_per_rank=True)
    first = real_batch(1000, shared, iteration=5)
    assert [real_batch(1000, shared, 5, rank).tolist() for rank in (1, 2)] == [first.tolist()] * 2
    blocks = [real_batch(1000, per_rank, 5, rank) for rank in range(3)]
    assert torch.equal(blocks[0], first)  # one process: the flag changes nothing
    together = torch.cat(blocks)
    assert len(together.unique()) == 3 * 64
    assert torch.equal(
        together, real_batch(1000, DistillConfig(dataset="digits", batch_size=192, seed=3), 5)
    )
    assert not torch.equal(first, real_batch(1000, shared, iteration=6))


def test_batch_per_rank_refuses_more_real_images_than_there_are_in_one_line():
    cfg = DistillConfig(dataset="digits", batch_size=800, batch_per_rank=True)
    check_real_batch(cfg, 1500, world_size=1)
    check_real_batch(DistillConfig(dataset="digits", batch_size=800), 1500, world_size=2)
    with pytest.raises(
        ValueError,
        match=r"^--batch-per-rank .* needs 1600 .* there are 1500; use "
        r"--batch-size 750 or less, or --no-batch-per-rank$",
    ):
        check_real_batch(cfg, 1500, world_size=2)


def test_an_init_is_the_same_whichever_rank_draws_it():
    """Ranks 0 and 1 drawing two inits each draw what one process drawing four does (so torchrun with N
    processes × k inits distils what one process with N · k does), and --init-noise keeps that."""
    model = build_model("mlp", (1, 8, 8), 10)
    inits = InitDistribution("random", model, "xavier", 0)
    cfg = DistillConfig(dataset="digits", init_noise=0.1)
    device = torch.device("cpu")
    whole = draw_inits(inits, cfg, 7, range(4), device)
    split = draw_inits(inits, cfg, 7, range(2), device) + draw_inits(
        inits, cfg, 7, range(2, 4), device
    )
    for a, b in zip(whole, split, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    first = [next(iter(p.values())) for p in whole]
    assert not torch.equal(first[0], first[1])
    other = draw_inits(inits, cfg, 7, range(1), device, "lenet")  # an --extra-models stream
    assert not torch.equal(next(iter(other[0].values())), first[0])


@pytest.mark.parametrize("protocol", ["replay", "dataset"])
def test_a_users_dropout_masks_belong_to_the_init_not_to_the_rank(protocol):
    """An init's meta-gradient through a dropout network is the same whichever rank takes it (so N processes
    × k inits distil what one process with N · k does), and differs between inits."""
    from datadistill.minibatch_unroll import Recipe
    from datadistill.objectives import task_objective
    from datadistill.outer_grads import meta_grads

    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(16, 3),
    )  # fmt: skip
    inits = InitDistribution("random", model, "default", 0)
    cfg = DistillConfig(dataset="digits", protocol=protocol, steps=1, epochs=1, unroll=3)
    params = draw_inits(inits, cfg, 5, range(2), torch.device("cpu"))
    steps = Steps(torch.randn(1, 6, 1, 8, 8, generator=g), torch.arange(6).view(1, 6) % 3,
                  torch.tensor([0.1]))  # fmt: skip
    objective = task_objective(torch.randn(9, 1, 8, 8, generator=g), torch.arange(9) % 3)
    recipe = Recipe(updates=3, optimizer="sgd") if protocol == "dataset" else None

    def grads(params0, first):
        return meta_grads(model, params0, steps, objective, cfg, recipe=recipe, vmap_inits=False,
                          iteration=5, first=first)  # fmt: skip

    both = grads(params, 0)
    torch.rand(3)  # draws made in between change nothing
    second = grads(params[1:], 1)[0]
    torch.testing.assert_close(second.images, both[1].images, rtol=0, atol=0)
    torch.testing.assert_close(second.loss, both[1].loss, rtol=0, atol=0)
    same_init_other_index = grads(params[1:], 0)[0]
    assert not torch.equal(
        same_init_other_index.images, both[1].images
    )  # the masks are the index's
