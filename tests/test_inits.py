"""inits.py: p(θ_0) — fixed, random (held-out evaluation inits), pre-trained pools."""

from __future__ import annotations

import pytest
import torch

from datadistill.inits import InitDistribution
from datadistill.models import build_model
from datadistill.seeds import generator


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def model():
    return build_model("mlp", (1, 8, 8), 10)


def test_fixed_init_is_the_same_network_whatever_the_generator(model):
    inits = InitDistribution("fixed", model, seed=3)
    first = inits.sample(generator(0, "init", 0))
    assert _same(first, inits.sample(generator(1, "init", 7)))
    assert _same(first, next(inits.evaluation_inits(1)))  # evaluation uses that one network too
    assert not _same(first, InitDistribution("fixed", model, seed=4).sample(torch.Generator()))


def test_random_evaluation_inits_are_repeatable_and_never_distillation_draws(model):
    inits = InitDistribution("random", model)
    held_out = list(inits.evaluation_inits(5))
    assert all(_same(a, b) for a, b in zip(held_out, inits.evaluation_inits(5), strict=True))
    # distillation draws its inits from the run's seed stream (seeds.generator(seed, iteration, "init", j))
    drawn = [
        inits.sample(generator(seed, it, "init", j))
        for seed in (0, 1)
        for it in range(3)
        for j in range(2)
    ]
    assert not any(_same(d, h) for d in drawn for h in held_out)
    assert not _same(held_out[0], held_out[1])


def test_sample_draws_differ_per_generator_and_repeat_per_seed(model):
    inits = InitDistribution("random", model)
    a = inits.sample(generator(0, 0, "init", 0))
    assert _same(a, inits.sample(generator(0, 0, "init", 0)))
    assert not _same(a, inits.sample(generator(0, 0, "init", 1)))


def _pool(model, n):
    gens = [torch.Generator().manual_seed(100 + i) for i in range(n)]
    return [InitDistribution("random", model).sample(g) for g in gens]


def test_pretrained_kinds_need_a_pool_and_held_out_networks(model):
    with pytest.raises(ValueError, match="--pretrained"):
        InitDistribution("pretrained-fixed", model)
    with pytest.raises(ValueError, match="--heldout"):
        InitDistribution("pretrained-random", model, pool=_pool(model, 2))
    with pytest.raises(ValueError, match="unknown init kind 'randm'"):
        InitDistribution("randm", model)


def test_pretrained_fixed_is_the_pools_first_network_and_a_copy(model):
    pool = _pool(model, 3)
    inits = InitDistribution("pretrained-fixed", model, pool=pool)
    drawn = inits.sample(torch.Generator())
    assert _same(drawn, pool[0])
    next(iter(drawn.values())).add_(1.0)  # changing the draw leaves the pool alone
    assert _same(inits.sample(torch.Generator()), pool[0])


def test_pretrained_random_evaluates_on_held_out_networks_only(model):
    pool, held = _pool(model, 3), _pool(model, 5)[3:]
    inits = InitDistribution("pretrained-random", model, pool=pool, heldout=held)
    assert inits.max_evaluation_models() == 2
    evaluated = list(inits.evaluation_inits(2))
    assert all(_same(e, h) for e, h in zip(evaluated, held, strict=True))
    assert all(any(_same(inits.sample(generator(0, i)), p) for p in pool) for i in range(5))
    with pytest.raises(ValueError, match="--models"):
        list(inits.evaluation_inits(3))
