"""Pre-trained pools: files and manifest, exact round trip, vmap == one-by-one, adaptation runs, clear errors."""

import json

import pytest
import torch

from datadistill import distill, evaluate
from datadistill.artifacts import DistilledData, load_tensors
from datadistill.cli import main
from datadistill.evaluate import evaluate_as_dataset
from datadistill.experiments.pretrain import _init_generator, pretrain
from datadistill.models import build_model, init_params
from datadistill.pools import load_pool
from datadistill.train import train_networks

# The embedded digits set (1437 train / 360 test images, 1x8x8) and the MLP: a pool in about a second.
POOL = dict(dataset="digits", model="mlp", count=3, heldout=1, epochs=1, progress=False)
# A two-iteration adaptation run on digits: seconds, enough to check what starts from the pool.
ADAPT = dict(dataset="digits", model="mlp", steps=1, epochs=1, iterations=2, batch_size=128,
             eval_every=2, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "digits-mlp"
    pretrain(**POOL, out=out)
    return out


def test_pretrain_writes_networks_and_manifest(pool_dir):
    manifest = json.loads((pool_dir / "manifest.json").read_text())
    nets = manifest["networks"]
    assert [n["file"] for n in nets] == [f"net_{i:04d}.safetensors" for i in range(3)]
    assert [n["split"] for n in nets] == ["train", "train", "heldout"]
    assert [n["seed"] for n in nets] == [0, 1, 2]
    for n in nets:
        assert (pool_dir / n["file"]).is_file()
        # One epoch on 1437 digits: well above chance (10%).
        assert n["test_accuracy"] > 50.0
    assert manifest["dataset"] == "digits" and manifest["model"] == "mlp"
    assert manifest["in_shape"] == [1, 8, 8] and manifest["num_classes"] == 10
    assert len(manifest["mean"]) == 1 and len(manifest["std"]) == 1
    assert manifest["recipe"]["epochs"] == 1 and manifest["recipe"]["optimizer"] == "Adam"
    assert manifest["train_seconds"] >= 0
    assert not list(pool_dir.glob("*.pt")) and not list(pool_dir.glob("*.pkl"))
    # Different seeds give different networks.
    a, b = (load_tensors(pool_dir / nets[i]["file"]) for i in (0, 1))
    assert not torch.equal(a["classifier.0.weight"], b["classifier.0.weight"])


def test_load_pool_round_trip_equals_saved_tensors(pool_dir):
    net = build_model("mlp", (1, 8, 8), 10)
    pool, heldout = load_pool(pool_dir, net)
    assert len(pool) == 2 and len(heldout) == 1
    names = [n for n, _ in net.named_parameters()]
    for params, file in zip(pool + heldout, ["net_0000", "net_0001", "net_0002"], strict=True):
        saved = load_tensors(pool_dir / f"{file}.safetensors")
        assert list(params) == names
        for n in names:
            assert torch.equal(params[n], saved[n])


def test_pool_networks_are_trained_from_their_seeded_xavier_init(pool_dir):
    """Re-training network 1 alone from its seed reproduces the saved file exactly (loop method)."""
    from datadistill.data import load_dataset

    train = load_dataset("digits", "train")
    net = build_model("mlp", train.image_shape, 10)
    init = init_params(net, "xavier", _init_generator(1))
    [again] = train_networks(net, [init], train.images, train.labels, [1], epochs=1)
    saved = load_tensors(pool_dir / "net_0001.safetensors")
    for n, p in again.items():
        assert torch.equal(p, saved[n]), n


def test_distill_pretrained_random_evaluates_only_heldout_networks(pool_dir, tmp_path):
    out = tmp_path / "run"
    data = distill(
        dataset="digits",
        model="mlp",
        init="pretrained-random",
        pretrained=str(pool_dir),
        steps=2,
        epochs=1,
        iterations=5,
        batch_size=128,
        eval_every=5,
        out=str(out),
        progress=False,
    )
    acc = data.manifest["accuracy"]
    # The pool holds a single held-out network, so the final evaluation can only have used that one.
    assert acc["n_models"] == 1
    result = evaluate(out, progress=False, models=1)
    assert result.n_models == 1 and result.init == "pretrained-random"
    # "before training" is the held-out network as is: its accuracy is the one recorded in the pool.
    recorded = json.loads((pool_dir / "manifest.json").read_text())["networks"][2]
    assert result.accuracies_before[0] == pytest.approx(recorded["test_accuracy"], abs=1e-3)
    with pytest.raises(ValueError, match="held-out"):
        evaluate(out, progress=False, models=2)
    # Without --models: every held-out network (the default of 200 would exceed a small pool).
    assert evaluate(out, progress=False).n_models == 1
    assert evaluate_as_dataset(out, epochs=1, progress=False).n_models == 1


def test_distill_pretrained_fixed_starts_from_the_first_network(pool_dir, tmp_path):
    data = distill(
        **ADAPT, init="pretrained-fixed", pretrained=str(pool_dir), out=str(tmp_path / "run")
    )
    recorded = json.loads((pool_dir / "manifest.json").read_text())["networks"][0]
    before = data.manifest["accuracy"]["accuracy_before_mean"]
    assert before == pytest.approx(recorded["test_accuracy"], abs=1e-3)


def test_published_adaptation_set_carries_its_network_and_reproduces_offline(pool_dir, tmp_path):
    from datadistill.gallery import publish

    common = dict(ADAPT, pretrained=str(pool_dir))
    distill(init="pretrained-fixed", out=str(tmp_path / "run"), **common)
    gallery = tmp_path / "gallery"
    manifest = publish(tmp_path / "run", "digits-adapt", gallery_dir=gallery)
    assert manifest["pretrained"] == "pretrained"  # relative: the entry can move
    moved = tmp_path / "elsewhere"
    (gallery / "digits-adapt").rename(moved)
    data = DistilledData.load(moved)
    assert data.manifest["pretrained"] == str(moved / "pretrained")
    assert len(load_pool(moved / "pretrained", build_model("mlp", (1, 8, 8), 10))[0]) == 1
    result = evaluate(data, progress=False)
    assert result.accuracy_mean == manifest["accuracy"]["accuracy_mean"]

    distill(init="pretrained-random", out=str(tmp_path / "random"), inits_per_iteration=1, **common)
    with pytest.raises(ValueError, match="pretrained-random"):
        publish(tmp_path / "random", "digits-adapt-random", gallery_dir=gallery)


def test_mismatched_pool_is_a_clear_error(pool_dir):
    with pytest.raises(ValueError, match=r"holds mlp networks trained on digits.*needs lenet"):
        load_pool(pool_dir, build_model("lenet", (1, 28, 28), 10))
    with pytest.raises(ValueError, match=r"inputs \(1, 8, 8\).*inputs \(1, 16, 16\).*--resize 8"):
        load_pool(pool_dir, build_model("mlp", (1, 16, 16), 10))
    with pytest.raises(ValueError, match="fit mlp"):  # same name and shapes in, other hidden sizes
        load_pool(pool_dir, build_model("mlp", (1, 8, 8), 10, hidden=(32,)))


def test_missing_pool_folder_or_manifest(tmp_path):
    net = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(FileNotFoundError, match="does not exist.*datadistill pretrain"):
        load_pool(tmp_path / "nowhere", net)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        load_pool(tmp_path / "empty", net)


def test_pretrain_refuses_bad_settings(tmp_path, pool_dir):
    with pytest.raises(ValueError, match="--heldout"):
        pretrain(**{**POOL, "heldout": 3}, out=tmp_path / "a")
    with pytest.raises(ValueError, match="--count"):
        pretrain(**{**POOL, "count": 0}, out=tmp_path / "b")
    with pytest.raises(ValueError, match="--method"):
        pretrain(**POOL, method="threads", out=tmp_path / "c")
    with pytest.raises(FileExistsError, match="already holds a pool"):
        pretrain(**POOL, out=pool_dir)


def test_cli_hooks(tmp_path, capsys):
    out = tmp_path / "pool"
    status = main(
        ["pretrain", "--dataset", "digits", "--model", "linear", "--count", "2", "--heldout", "1"]
        + ["--out", str(out), "--method", "vmap"]
    )
    assert status == 0
    assert "pre-trained 2 linear networks on digits" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["method"] == "vmap" and manifest["heldout"] == 1


def test_pretrain_pads_and_records_it(tmp_path):
    out = tmp_path / "pool"
    manifest = pretrain(**{**POOL, "count": 2}, resize=6, pad=1, out=out)
    assert manifest["in_shape"] == [1, 8, 8] and (manifest["resize"], manifest["pad"]) == (6, 1)
    assert json.loads((out / "manifest.json").read_text())["pad"] == 1


@pytest.mark.parametrize(
    "preset",
    ["mnist_to_usps_fixed", "mnist_to_usps_random", "usps_to_mnist_fixed", "usps_to_mnist_random"],
)
def test_adaptation_presets_pair_a_pool_with_28x28_targets(preset):
    from datadistill.config import DistillConfig, find_preset, load_config

    cfg = load_config(DistillConfig, preset)
    source, target = preset.split("_to_")[0], preset.split("_to_")[1].split("_")[0]
    assert cfg.dataset == target and cfg.model == "lenet" and cfg.init.startswith("pretrained-")
    assert source in cfg.pretrained
    # USPS is 16x16 with digits filling the frame: resized to 20 and padded by 4 to MNIST's 28x28
    # (MNIST's 20x20 digit box), wherever it is the distilled (target) set ...
    usps = (20, 4)
    assert (cfg.resize, cfg.pad) == (usps if target == "usps" else (None, None))
    # ... and in the command the preset gives for pre-training a USPS pool.
    if source == "usps":
        assert "--resize 20 --pad 4" in find_preset(preset).read_text()


@pytest.mark.parametrize("init", ["pretrained-fixed", "pretrained-random"])
def test_learned_labels_work_with_pretrained_inits(pool_dir, tmp_path, init):
    out = tmp_path / "run"
    extra = {"inits_per_iteration": 1} if init == "pretrained-random" else {}
    common = dict(ADAPT, iterations=4, learn_labels=True, label_targets="free", images_per_step=5)
    data = distill(init=init, pretrained=str(pool_dir), out=str(out), **common, **extra)
    assert data.soft_labels and data.labels.shape == (1, 5, 10)
    assert not torch.allclose(data.labels.sum(-1), torch.ones(1, 5))  # learned, not a distribution
    again = evaluate(out, progress=False)  # held-out pool nets for pretrained-random
    assert again.accuracy_mean == pytest.approx(data.manifest["accuracy"]["accuracy_mean"])


def test_a_pool_of_your_own_network_pretrains_and_initialises_distill(tmp_path, monkeypatch):
    """`--model module:factory` works for pretrain as for distill, and the pool then serves --init pretrained."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "pool_nets.py").write_text(
        "from torch import nn\n"
        "def make(in_shape, num_classes):\n"
        "    c, h, w = in_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 16), nn.ReLU(), nn.Linear(16, num_classes))\n"
    )
    manifest = pretrain(**{**POOL, "model": "pool_nets:make"}, out=tmp_path / "pool")
    assert manifest["model"] == "pool_nets:make"
    settings = {**ADAPT, "model": "pool_nets:make", "init": "pretrained-fixed"}
    data = distill(**settings, pretrained=str(tmp_path / "pool"), out=str(tmp_path / "run"))
    assert data.manifest["model"] == "pool_nets:make"
    # The run starts from the pool's network 0: before training it scores what pretrain measured for it.
    before = data.manifest["accuracy"]["accuracy_before_mean"]
    assert before == pytest.approx(manifest["networks"][0]["test_accuracy"], abs=1e-3)
    with pytest.raises(ValueError, match="holds pool_nets:make networks .* but the run needs mlp"):
        distill(**{**ADAPT, "init": "pretrained-fixed"}, pretrained=str(tmp_path / "pool"))
