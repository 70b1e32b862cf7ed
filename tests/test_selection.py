"""--val-size selection: held-out images with the objective's labels, scored on networks never distilled from."""

from types import SimpleNamespace

import pytest
import torch

from datadistill.config import DistillConfig
from datadistill.inits import InitDistribution
from datadistill.selection import VAL_NETS, make_validation


def test_validation_scores_the_objective_on_networks_distillation_never_draws():
    model = torch.nn.Linear(4, 3)
    nets = [{"weight": torch.full((3, 4), float(i)), "bias": torch.zeros(3)} for i in range(7)]
    inits = InitDistribution("pretrained-random", model, pool=nets, heldout=nets[:1])
    held_out = SimpleNamespace(images=torch.randn(6, 4), labels=torch.tensor([0, 1, 2, 0, 1, 2]))
    cfg = DistillConfig(objective="poison", source_class=0, target_class=2, val_size=6)
    validation, sampled = make_validation(cfg, inits, held_out, torch.device("cpu"))
    # The last VAL_NETS training nets score iterates and are never sampled for distillation.
    assert [float(n["weight"][0, 0]) for n in validation.nets] == [3.0, 4.0, 5.0, 6.0]
    assert len(sampled.pool) == 7 - VAL_NETS and len(inits.pool) == 7
    gen = torch.Generator().manual_seed(0)
    assert all(float(sampled.sample(gen)["weight"][0, 0]) < 3 for _ in range(50))
    assert validation.labels.tolist() == [2, 1, 2, 2, 1, 2]  # class K scored as T
    small = InitDistribution("pretrained-random", model, pool=nets[:VAL_NETS], heldout=nets[:1])
    with pytest.raises(ValueError, match="pre-train more"):
        make_validation(cfg, small, held_out, torch.device("cpu"))
