"""Baselines: image sets in class order, per-class k-means, tuning blind to the test set, learned lrs, 1-NN;
and the field's protocol of evaluate.py (train on the images as an ordinary training set)."""

import dataclasses
import json

import pytest
import torch

from datadistill import DistilledData
from datadistill.cli import main
from datadistill.data import load_dataset
from datadistill.evaluate import (
    DATASET_PROTOCOL,
    FieldRecipe,
    accuracy,
    evaluate_as_dataset,
    train_as_dataset,
)
from datadistill.experiments import baselines as bl
from datadistill.setting import make_setting

# Small budgets on the embedded digits set (1437 train / 360 test, 8x8): 2 steps x 2 images per class.
SMALL = dict(dataset="digits", model="mlp", steps=2, epochs=2, images_per_class=2, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def test_split_is_disjoint_and_tuning_never_sees_the_test_set(monkeypatch):
    fit, val = bl.split_train(1437, 300, seed=0)
    assert len(val) == 287  # capped at a fifth of the split
    assert len(set(fit.tolist()) & set(val.tolist())) == 0
    assert sorted(fit.tolist() + val.tolist()) == list(range(1437))

    cfg = bl.BaselinesConfig(
        **SMALL, only=("random-real", "optimized-real"), learn_lrs=False, candidates=3
    )
    honest = bl.run_baselines(cfg, progress=False)

    # Replace the test set by noise with shuffled labels: the tuned lrs, the chosen optimised set and their
    # validation accuracies must not move (only the reported test accuracies may).
    real_load = bl.load_dataset

    def scrambled(name, split, **kwargs):
        data = real_load(name, split, **kwargs)
        if split != "test":
            return data
        g = torch.Generator().manual_seed(1)
        return dataclasses.replace(
            data,
            images=torch.randn(data.images.shape, generator=g),
            labels=data.labels[torch.randperm(len(data.labels), generator=g)],
        )

    monkeypatch.setattr(bl, "load_dataset", scrambled)
    blind = bl.run_baselines(cfg, progress=False)
    for a, b in zip(honest.rows, blind.rows, strict=True):
        assert (a.baseline, a.lr, a.val_accuracy) == (b.baseline, b.lr, b.val_accuracy)
    assert (
        honest.rows[0].accuracy_mean > 40.0 > blind.rows[0].accuracy_mean
    )  # the test set did change


def test_tuned_lr_is_the_best_of_the_grid_on_validation(digits):
    train, _ = digits
    fit, val = bl.split_train(len(train), 300, seed=0)
    setting = make_setting(
        dataset="digits", model="mlp", init="fixed", image_shape=(1, 8, 8), num_classes=10
    )
    per_class = bl.random_real(train.images[fit], train.labels[fit], 10, 2, 2, torch.Generator())
    images, labels = bl.arrange(per_class, 2, 2)
    inits = [setting.inits.sample(torch.Generator())]
    val_x, val_y = train.images[val], train.labels[val]
    grid = (1e-3, 0.03, 0.3, 30.0)  # 30 diverges: it must be scored, not crash
    lr, acc = bl.tune_lr(setting.model, images, labels, 2, inits, val_x, val_y, grid)
    scores = [
        bl.replay_accuracy(setting.model, images, labels, g, 2, inits, val_x, val_y) for g in grid
    ]
    assert acc == max(scores) and lr == grid[scores.index(max(scores))]
    assert lr in (0.03, 0.3) and acc > 40.0


def test_learned_lrs_on_fixed_images_are_no_worse_than_the_tuned_lr():
    report = bl.run_baselines(
        **SMALL, only=("kmeans",), learn_lrs=True, lrs_iterations=40, progress=False
    )
    tuned, learned = report.rows
    assert (tuned.lrs, learned.lrs) == (bl.TUNED, bl.LEARNED)
    assert learned.lr_range is not None and learned.lr_range[0] > 0
    assert learned.accuracy_mean >= tuned.accuracy_mean - 2.0
    assert tuned.accuracy_mean > 50.0


def test_random_init_uses_held_out_networks_and_reports_spread():
    report = bl.run_baselines(
        **{**SMALL, "init": "random"},
        models=4,
        only=("average-real", "full-data"),
        learn_lrs=False,
        full_epochs=2,
        progress=False,
    )
    avg, full = report.rows
    assert avg.n_models == 4 and len(set(avg.accuracies)) > 1 and avg.accuracy_std > 0
    assert full.baseline == "full-data" and full.accuracy_mean > 70.0


def test_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = (
        "baselines --dataset digits --model mlp --steps 2 --epochs 2 --images-per-class 2 "
        f"--only knn-random,knn-kmeans,average-real --no-learn-lrs --json {out}".split()
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| knn-kmeans | 1-NN |" in printed and "| average-real | tuned lr |" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["baseline"] for r in rows] == ["average-real", "knn-random", "knn-kmeans"]
    for r in rows:
        assert {"accuracy_mean", "accuracy_std", "n_models"} <= r.keys()
        assert 10.0 < r["accuracy_mean"] <= 100.0 and r["n_models"] == 1

    assert main("baselines --only kmeans,kmenas".split()) == 1
    err = capsys.readouterr().err
    assert "kmenas" in err and "Traceback" not in err


def test_field_protocol_trains_on_images_as_a_dataset(digits, tmp_path):
    train, test = digits
    setting = make_setting(
        dataset="digits", model="mlp", init="fixed", image_shape=(1, 8, 8), num_classes=10
    )
    per_class = bl.random_real(
        train.images, train.labels, 10, 2, 5, torch.Generator()
    )  # 100 images
    images, labels = bl.arrange(per_class, 2, 5)
    theta0 = setting.inits.sample(torch.Generator())
    recipe = FieldRecipe(epochs=50, lr=0.01, batch_size=32, weight_decay=0.0)
    trained = train_as_dataset(setting.model, images, labels, theta0, recipe)
    before = accuracy(setting.model, theta0, test.images, test.labels)
    after = accuracy(setting.model, trained, test.images, test.labels)
    assert after > 60.0 and after > before + 30.0
    assert all(torch.equal(theta0[k], setting.inits.sample(torch.Generator())[k]) for k in theta0)

    # The report says which protocol produced the number.
    lrs = torch.full((4,), 0.1)
    manifest = {"dataset": "digits", "model": "mlp", "init": "fixed", "num_classes": 10}
    DistilledData(images, labels, lrs, manifest).save(tmp_path / "set")
    result = evaluate_as_dataset(
        tmp_path / "set", model="mlp", models=2, recipe=recipe, progress=False
    )
    assert result.protocol == DATASET_PROTOCOL == "dataset" and "| dataset |" in result.table()
    assert result.n_models == 2 and result.accuracy_mean > 60.0
    assert result.recipe.startswith("mlp: SGD m0.9 wd0, lr 0.01 /10 at epoch 25, batch 32")


def test_baselines_read_data_as_distill_does_with_resize_and_pad(tmp_path, capsys):
    """LeNet takes 12x12 and up: on the 8x8 digits the baselines refuse it and point to --resize, which
    they now have (they had named a flag they lacked)."""
    base = "baselines --dataset digits --model lenet --steps 1 --epochs 1 --only average-real --no-learn-lrs"
    assert main(base.split()) == 1
    assert "--resize" in capsys.readouterr().err
    out = tmp_path / "b.json"
    assert main([*base.split(), "--resize", "12", "--pad", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["config"]["resize"], report["config"]["pad"]) == (12, 2)
    assert 10.0 < report["rows"][0]["accuracy_mean"] <= 100.0
