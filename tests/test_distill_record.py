"""What a run records about itself: the inner recipe from the settings, and its record in the manifest."""

import json

import pytest

from datadistill.config import DistillConfig
from datadistill.distill_record import inner_recipe, recipe_manifest
from datadistill.minibatch_unroll import Recipe


def test_replay_runs_have_no_inner_recipe():
    cfg = DistillConfig()
    assert inner_recipe(cfg) is None and recipe_manifest(None, cfg) is None


def test_dataset_recipe_is_the_settings_and_the_manifest_says_how_it_trained():
    cfg = DistillConfig(
        protocol="dataset",
        inner_optimizer="adam",
        unroll=30,
        window=10,
        inner_batch=8,
        learn_lr=False,
    )
    recipe = inner_recipe(cfg)
    assert recipe == Recipe(optimizer="adam", updates=30, batch_size=8)
    record = recipe_manifest(recipe, cfg)
    assert record["optimizer"] == "adam" and record["updates"] == 30 and record["batch_size"] == 8
    assert record["window"] == 10 and record["learned_lr"] is False
    assert record["momentum"] is None and record["betas"] == list(recipe.betas)
    momentum = DistillConfig(protocol="dataset", inner_optimizer="momentum")
    assert recipe_manifest(inner_recipe(momentum), momentum)["momentum"] == Recipe().momentum


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize(("inner_batch", "augment"), [(None, "none"), (16, "dsa"), (3, "dc")])
def test_the_manifests_record_gives_the_recipe_back(optimizer, inner_batch, augment):
    """`evaluate --protocol replay` rebuilds the inner training from the record (Recipe.from_record)."""
    cfg = DistillConfig(
        protocol="dataset",
        inner_optimizer=optimizer,
        unroll=12,
        inner_batch=inner_batch,
        inner_augment=augment,
    )
    recipe = inner_recipe(cfg)
    record = json.loads(json.dumps(recipe_manifest(recipe, cfg)))  # as manifest.json holds it
    assert Recipe.from_record(record) == recipe
