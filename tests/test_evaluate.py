"""evaluate.py: replay (the paper's protocol) of a distilled set on a network, and EvalResult."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import datadistill
from datadistill.artifacts import DistilledData
from datadistill.config import EvaluateConfig
from datadistill.data import ImageDataset
from datadistill.evaluate import EvalResult, accuracy, replay
from datadistill.models import build_model, init_params
from datadistill.setting import setting_from_manifest
from datadistill.unroll import Steps, unroll


def _tiny(lrs: torch.Tensor) -> DistilledData:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 10, 1, 8, 8, generator=g)
    labels = torch.arange(10).repeat(2, 1)
    return DistilledData(images, labels, lrs, {"label_targets": None})


def test_replay_is_unroll_over_all_epochs_and_detached():
    model = build_model("mlp", (1, 8, 8), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(1))
    data = _tiny(torch.tensor([0.1, 0.2, 0.05, 0.3]))  # 2 steps x 2 epochs
    final = replay(data, model, params)
    expected = unroll(model, params, Steps(data.images, data.labels, data.lrs), create_graph=False)[
        -1
    ]
    assert all(torch.allclose(final[k], expected[k]) for k in final)
    assert all(not p.requires_grad for p in final.values())
    assert any(not torch.equal(final[k], params[k]) for k in final)  # it did train


def test_replay_with_zero_step_sizes_leaves_the_network_unchanged():
    model = build_model("mlp", (1, 8, 8), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(1))
    final = replay(_tiny(torch.zeros(4)), model, params)
    assert all(torch.equal(final[k], params[k].detach()) for k in final)


def test_accuracy_reads_a_dataset_of_8_bit_pixels_in_chunks_with_the_same_result():
    model = build_model("lenet", (1, 28, 28), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (37,), generator=g)
    test = ImageDataset(pixels, labels, "x", 10, tuple("0123456789"), (0.1307,), (0.3081,))
    assert test.compact
    whole = accuracy(model, params, test.images, labels)
    assert accuracy(model, params, test, labels, batch_size=8) == whole  # 5 chunks, last one short
    assert accuracy(model, params, test, labels) == whole


def test_eval_result_reports_its_protocol_and_numbers():
    result = EvalResult(90.0, 1.5, 2, 10.0, 0.5, [88.5, 91.5], [9.5, 10.5], init="random")
    d = result.to_dict()
    assert d["protocol"] == "replay" and d["accuracy_mean"] == 90.0 and d["n_models"] == 2
    assert "90" in result.table()


@pytest.mark.slow
def test_replay_of_a_gallery_set_reproduces_its_manifest_accuracy():
    if not os.environ.get("DATADISTILL_DATA"):
        pytest.skip("needs real MNIST: set $DATADISTILL_DATA")
    data = datadistill.load_pretrained("mnist-fixed-10")
    setting = setting_from_manifest(data.manifest)
    test = setting.load("test")
    theta0 = next(setting.inits.evaluation_inits(1))
    trained = replay(data, setting.model, theta0)
    expected = data.manifest["accuracy"]["accuracy_mean"]
    assert accuracy(setting.model, trained, test.images, test.labels) == pytest.approx(
        expected, abs=1e-9
    )
    assert accuracy(setting.model, theta0, test.images, test.labels) == pytest.approx(
        data.manifest["accuracy"]["accuracy_before_mean"], abs=1e-9
    )


# --- the field's protocol: fresh networks trained normally on the images ----------------------------------


def test_field_recipe_matches_torch_sgd_with_weight_decay_and_the_drop_at_half_way():
    from datadistill.evaluate import FieldRecipe, train_as_dataset

    model = build_model("mlp", (1, 8, 8), 10).double()
    params = {
        k: v.double()
        for k, v in init_params(model, "default", torch.Generator().manual_seed(2)).items()
    }
    g = torch.Generator().manual_seed(0)
    images = torch.randn(12, 1, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(12) % 10
    recipe = FieldRecipe(epochs=4, lr=0.05, batch_size=5)
    trained = train_as_dataset(
        model, images, labels, params, recipe, generator=torch.Generator().manual_seed(7)
    )

    reference = build_model("mlp", (1, 8, 8), 10).double()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            p.copy_(params[name])
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    shuffle = torch.Generator().manual_seed(7)
    for epoch in range(4):
        if epoch == 2:
            opt.param_groups[0]["lr"] = 0.005
        order = torch.randperm(12, generator=shuffle)
        for i in range(0, 12, 5):
            opt.zero_grad()
            batch = order[i : i + 5]
            torch.nn.functional.cross_entropy(reference(images[batch]), labels[batch]).backward()
            opt.step()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(trained[name], p.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "--epochs must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"augment": "flip"}, "--augment must be one of none, dsa"),
        ({"momentum": float("nan")}, r"momentum must be a number in \[0, 1\), got nan"),
        ({"weight_decay": -5.0}, "weight_decay must be a finite number >= 0, got -5.0"),
    ],
)
def test_field_recipe_refuses_nonsense(kwargs, message):
    from datadistill.evaluate import FieldRecipe

    with pytest.raises(ValueError, match=message):
        FieldRecipe(**kwargs)


def _tiny_dataset_run(out, **settings) -> DistilledData:
    """Seconds: a digits set of 10 images distilled for the dataset protocol (an MLP, 6 inner updates)."""
    return datadistill.distill(
        **{
            "dataset": "digits",
            "model": "mlp",
            "protocol": "dataset",
            "init": "random",
            "images_per_class": 1,
            "unroll": 6,
            "iterations": 3,
            "out": str(out),
            "progress": False,
            **settings,
        }
    )


def test_dataset_protocol_is_the_default_for_sets_distilled_for_it(tmp_path, capsys):
    from datadistill.cli import main

    out = tmp_path / "run"
    _tiny_dataset_run(out, eval_models=2)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--models", "2", "--epochs", "2", "--model", "mlp"]) == 0
    printed = capsys.readouterr().out
    assert "| dataset | random (PyTorch default) | 2 |" in printed
    assert "recipe: mlp: SGD m0.9 wd0.0005, lr 0.01 /10 at epoch 1, batch 256, 2 epochs" in printed

    # the replay protocol has no architecture to choose: one line says so
    assert main(["evaluate", str(out), "--protocol", "replay", "--model", "lenet"]) == 1
    err = capsys.readouterr().err
    assert "--model applies to the dataset protocol" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "inner",
    [{}, {"inner_batch": 4, "inner_augment": "dsa", "formation": 2, "inner_optimizer": "adam"}],
)
def test_replay_of_a_dataset_protocol_set_trains_as_its_distillation_measured_it(tmp_path, inner):
    """`evaluate --protocol replay` of a set distilled for the dataset protocol trains held-out networks with
    the inner recipe its manifest records (it used to replay one plain GD step: 29% for a 97% set), and gives
    the run's own final evaluation to the bit."""
    out = tmp_path / "run"
    made = _tiny_dataset_run(out, eval_models=3, **inner)
    again = datadistill.evaluate(out, models=3, progress=False)
    recorded = made.manifest["accuracy"]
    assert (again.accuracy_mean, again.accuracy_std) == (
        recorded["accuracy_mean"],
        recorded["accuracy_std"],
    )
    assert again.recipe == recorded["recipe"]
    assert again.recipe.startswith("distilled: ") and "6 updates" in again.recipe


def _digits_set(images, labels, label_targets=None) -> DistilledData:
    """A one-step set of 8x8 digits images, as ``distill --protocol dataset`` would store it."""
    manifest = {
        "dataset": "digits",
        "model": "mlp",
        "init": "fixed",
        "num_classes": 10,
        "images_shape": list(images.shape),
        "mean": [0.0],
        "std": [1.0],
        "label_targets": label_targets,
    }
    return DistilledData(images, labels, torch.ones(1), manifest)


def test_dataset_protocol_defaults_to_five_convnets(tmp_path):
    from datadistill.evaluate import FieldRecipe, evaluate_as_dataset

    g = torch.Generator().manual_seed(0)
    data = _digits_set(torch.randn(1, 10, 1, 8, 8, generator=g), torch.arange(10).view(1, 10))
    result = evaluate_as_dataset(data, recipe=FieldRecipe(epochs=1), progress=False)
    assert result.n_models == 5 and result.recipe.startswith("convnet: ")
    assert len(set(result.accuracies_before)) > 1  # five different fresh inits
    # and `evaluate --help` says so (it used to give only the replay protocol's 1 or 200)
    (models,) = (f for f in dataclasses.fields(EvaluateConfig) if f.name == "models")
    assert f"dataset protocol, {result.n_models} fresh networks" in models.metadata["help"]


def test_dataset_protocol_refuses_negative_learned_targets(tmp_path):
    from datadistill.evaluate import evaluate_as_dataset

    labels = torch.eye(10).view(1, 10, 10) - 0.2  # free targets that went negative
    data = _digits_set(torch.zeros(1, 10, 1, 8, 8), labels, label_targets="free")
    with pytest.raises(ValueError, match="negative learned targets.*--protocol replay"):
        evaluate_as_dataset(data, models=1, progress=False)


def _ten_digits() -> DistilledData:
    g = torch.Generator().manual_seed(0)
    return _digits_set(torch.randn(1, 10, 1, 8, 8, generator=g), torch.arange(10).view(1, 10))


def test_jobs_train_the_same_networks_in_other_processes(capsys):
    from datadistill.evaluate import FieldRecipe, evaluate_as_dataset

    recipe = FieldRecipe(epochs=3, augment="dsa")
    alone = evaluate_as_dataset(_ten_digits(), model="mlp", models=3, recipe=recipe)
    # the bar counts epochs of all the networks, in this process or in the workers
    assert "9/9 [" in capsys.readouterr().err.rsplit("\r", 1)[-1]
    two = evaluate_as_dataset(_ten_digits(), model="mlp", models=3, recipe=recipe, jobs=2)
    assert "9/9 [" in capsys.readouterr().err.rsplit("\r", 1)[-1]
    # the same networks, the same draws; other thread counts may move a float bit, so one of digits' 360
    # test images (0.28 points) may be allowed to flip
    assert two.accuracies == pytest.approx(alone.accuracies, abs=0.3)
    assert two.accuracies_before == alone.accuracies_before


def test_jobs_refuse_what_they_cannot_do(tmp_path):
    from datadistill.evaluate import evaluate_as_dataset

    with pytest.raises(ValueError, match="--jobs must be a positive integer, got 0"):
        evaluate_as_dataset(_ten_digits(), model="mlp", models=1, jobs=0, progress=False)

    class LocalNet(torch.nn.Module):  # defined in a function: no worker process can import it
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    with pytest.raises(
        ValueError, match="--jobs 2 sends the network .* cannot be pickled .* use --jobs 1"
    ):
        evaluate_as_dataset(_ten_digits(), model=LocalNet(), models=2, jobs=2, progress=False)


def test_jobs_belong_to_the_dataset_protocol(tmp_path, capsys):
    from datadistill.cli import main

    folder = _ten_digits().save(tmp_path / "set")
    assert main(["evaluate", str(folder), "--protocol", "replay", "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "--jobs applies to the dataset protocol" in err and len(err.strip().splitlines()) == 1


def test_augment_is_a_keyword_as_it_is_a_flag():
    from datadistill.evaluate import FieldRecipe, evaluate_as_dataset

    kwargs = dict(model="mlp", models=1, epochs=2, progress=False)
    by_recipe = evaluate_as_dataset(_ten_digits(), recipe=FieldRecipe(augment="dc"), **kwargs)
    by_keyword = evaluate_as_dataset(_ten_digits(), augment="dc", **kwargs)
    assert by_keyword.accuracies == by_recipe.accuracies
    assert by_keyword.recipe.endswith("augmentation dc")
    with pytest.raises(ValueError, match="--augment must be one of none, dsa, dc, got 'dca'"):
        evaluate_as_dataset(_ten_digits(), augment="dca", **kwargs)


def test_dataset_protocol_trains_another_network_on_an_adaptation_set(tmp_path):
    """An adaptation set evaluated with --model X trains fresh X networks: its pool (pre-trained networks of
    its own architecture) is not drawn from, so it must not be loaded for X and refused."""
    from datadistill.evaluate import evaluate_as_dataset
    from datadistill.experiments.pretrain import pretrain

    pool = tmp_path / "pool"
    pretrain(dataset="digits", model="mlp", count=2, heldout=1, epochs=1, progress=False, out=pool)
    run = tmp_path / "run"
    datadistill.distill(
        dataset="digits", model="mlp", init="pretrained-fixed", pretrained=str(pool), steps=1,
        epochs=1, iterations=1, eval_every=1, progress=False, out=str(run),
    )  # fmt: skip
    result = evaluate_as_dataset(run, model="linear", models=2, epochs=1, progress=False)
    assert result.n_models == 2 and result.init == "random (PyTorch default)"
    assert result.recipe.startswith("linear: ")


def test_dataset_protocol_refuses_a_network_too_big_for_the_set_with_the_fix_evaluate_has(
    tmp_path, capsys
):
    """8x8 digits and LeNet (12x12 at least): evaluate cannot resize a stored set, so the line names
    --model, not distill's --resize."""
    from datadistill.cli import main

    folder = _ten_digits().save(tmp_path / "set")
    capsys.readouterr()
    argv = ["evaluate", str(folder), "--protocol", "dataset", "--model", "lenet", "--models", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "lenet needs inputs of at least 12x12 pixels but this set's images are 8x8" in err
    assert "another --model" in err and "--resize" not in err


@pytest.mark.parametrize("protocol", ["replay", "dataset"])
@pytest.mark.parametrize("name", ["manifest.json", "distilled.safetensors"])
def test_json_over_the_runs_own_files_is_refused_and_the_run_kept(tmp_path, capsys, protocol, name):
    from datadistill.cli import main

    folder = _ten_digits().save(tmp_path / "set")
    before = (folder / name).read_bytes()
    capsys.readouterr()
    argv = ["evaluate", str(folder), "--protocol", protocol, "--models", "1"]
    assert main([*argv, "--json", str(folder / name)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"would overwrite the run's own {name}" in err
    assert (folder / name).read_bytes() == before


def test_replay_keeps_the_set_on_its_own_network_and_its_own_init(tmp_path):
    """Replaying a LeNet set's steps on an MLP, or asking a fixed-init set for 5 networks, gave a number
    that looked like the set's own; both are refused with the call that does what was meant."""
    from datadistill.evaluate import evaluate_as_dataset

    data = datadistill.load_pretrained("mnist-fixed-10")
    with pytest.raises(
        ValueError, match=r"model='mlp': .*\(lenet\); .*evaluate_as_dataset\(data, model='mlp'\)"
    ):
        datadistill.evaluate(data, model="mlp", models=1)
    with pytest.raises(ValueError, match="--models 5: this set was distilled for one fixed init"):
        datadistill.evaluate(data, models=5)
    with pytest.raises(ValueError, match="recipe= takes a FieldRecipe, got dict"):
        evaluate_as_dataset(data, recipe={"epochs": 1})


def test_a_manifest_that_does_not_describe_its_set_is_refused_not_scored(tmp_path):
    import copy

    from datadistill.artifacts import InvalidArtifact

    base = datadistill.distill(
        dataset="digits", steps=1, epochs=1, iterations=1, progress=False, out=str(tmp_path / "r")
    )

    def edited(**changes) -> DistilledData:
        manifest = copy.deepcopy(base.manifest)
        manifest.update(changes)
        return DistilledData(base.images, base.labels, base.lrs, manifest)

    # a 20-class network was built for the 10 digits classes and scored
    with pytest.raises(
        InvalidArtifact, match="says 20 classes of 1x8x8 images, but its data set 'digits' has 10"
    ):
        datadistill.evaluate(edited(num_classes=20, class_names=None), models=1, progress=False)
    with pytest.raises(
        InvalidArtifact, match="key 'protocol' is 'bogus'; expected one of replay, dataset"
    ):
        datadistill.evaluate(edited(protocol="bogus"), models=1, progress=False)
    # null seeds read as absent (manual_seed(None) raised), and the same fixed init is replayed
    nulls = datadistill.evaluate(edited(seed=None, init_seed=None), models=1, progress=False)
    assert (
        nulls.accuracy_mean
        == datadistill.evaluate(edited(init_seed=0), models=1, progress=False).accuracy_mean
    )
    with pytest.raises(
        ValueError,
        match=r"built for inputs of shape \(1, 28, 28\), but the images are \(1, 8, 8\): build it with in_shape=\(1, 8, 8\)$",
    ):
        datadistill.evaluate(
            base, model=build_model("lenet", (1, 28, 28), 10), models=1, progress=False
        )


def test_test_images_of_another_shape_than_the_set_get_one_line_naming_both():
    from datadistill.evaluate import evaluate_as_dataset

    data = datadistill.load_pretrained("mnist-10-per-class")
    test = (torch.rand(20, 1, 20, 20), torch.arange(20) % 10)
    with pytest.raises(ValueError, match=r"1x20x20 images .* set's are 1x28x28"):
        evaluate_as_dataset(data, test=test, models=1, epochs=1)


def _dropout_mlp(in_shape, num_classes):
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(32, num_classes),
    )


def test_a_users_dropout_trains_the_same_networks_whatever_the_jobs_and_prior_draws():
    """Dropout masks came from the global generator: another --jobs, or draws made before, changed the
    networks (the test passes, in eval mode, are deterministic)."""
    from datadistill.evaluate import FieldRecipe, evaluate_as_dataset

    recipe = FieldRecipe(epochs=20, lr=0.1)  # enough training for the masks to move predictions
    kwargs = dict(model=_dropout_mlp, models=2, recipe=recipe, progress=False)
    alone = evaluate_as_dataset(_ten_digits(), **kwargs)
    torch.rand(5)
    assert evaluate_as_dataset(_ten_digits(), **kwargs).accuracies == alone.accuracies
    two = evaluate_as_dataset(_ten_digits(), **kwargs, jobs=2)
    assert two.accuracies == pytest.approx(
        alone.accuracies, abs=0.3
    )  # as for the built-in networks
