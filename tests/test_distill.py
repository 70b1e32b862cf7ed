"""The outer loop: it learns, it resumes bit-for-bit, it refuses nonsense without losing saved work."""

import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datadistill import DistilledData, distill, evaluate
from datadistill.artifacts import load_tensors
from datadistill.checkpoint import CHECKPOINT, PREVIOUS_CHECKPOINT
from datadistill.cli import main
from datadistill.config import DistillConfig, load_config
from datadistill.distill import DistillationDiverged, collapsed
from datadistill.distributed import World
from datadistill.initial_state import class_cover
from datadistill.schedule import outer_lr

# Small but real: the embedded digits set (1437 train / 360 test images, 8x8), an MLP, fixed init.
TINY = dict(
    dataset="digits",
    model="mlp",
    steps=2,
    epochs=2,
    batch_size=256,
    eval_every=10,
    lr=0.05,
    lr_init=0.1,
    schedule="step",
    decay_every=1000,  # a constant Adam lr
)


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_tensors(folder / "distilled.safetensors")


def _resume_matches_straight(cfg: dict, tmp_path: Path, iterations: int) -> tuple:
    """Run ``cfg`` straight to ``iterations`` in tmp_path/a, and in tmp_path/b stop half-way and resume from
    the checkpoint; assert the two sets are equal bit for bit. Returns (straight, resumed)."""
    half = iterations // 2
    straight = distill(**cfg, iterations=iterations, out=str(tmp_path / "a"), progress=False)
    distill(**cfg, iterations=half, checkpoint_every=half, out=str(tmp_path / "b"), progress=False)
    (tmp_path / "b" / "distilled.safetensors").unlink()
    resumed = distill(
        **cfg, iterations=iterations, out=str(tmp_path / "b"), resume=True, progress=False
    )
    for name in ("images", "labels", "lrs"):
        assert torch.equal(getattr(straight, name), getattr(resumed, name)), name
    return straight, resumed


def _refused_in_one_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    """``datadistill distill ARGS --out tmp_path/r`` exits 1 with ``message`` on one line and writes nothing."""
    code = main([*args, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_distillation_learns_and_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    data = distill(**TINY, iterations=60, out=str(out), progress=False)
    acc = data.manifest["accuracy"]
    # 20 distilled digits, 4 GD steps: far above chance (10%) and far above the untrained net. The exact
    # figure depends on the CPU's float kernels (70-72% on one machine, 69.7% on another), so the bound
    # leaves room below it.
    assert acc["accuracy_mean"] > 60.0
    assert acc["accuracy_mean"] > acc["accuracy_before_mean"] + 40.0
    for name in (
        "distilled.safetensors",
        "manifest.json",
        "config.yaml",
        "steps.png",
        "curve.png",
        "metrics.json",
        CHECKPOINT,
    ):
        assert (out / name).is_file(), name
    assert data.images.shape == (2, 10, 1, 8, 8)
    assert data.lrs.shape == (4,) and bool((data.lrs > 0).all())
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]

    loaded = DistilledData.load(out)
    assert torch.equal(loaded.images, data.images) and torch.equal(loaded.lrs, data.lrs)
    manifest = loaded.manifest
    for key in (
        "dataset",
        "model",
        "init",
        "steps",
        "epochs",
        "mean",
        "std",
        "seed",
        "version",
        "accuracy",
    ):
        assert key in manifest, key
    # Fixed init: evaluating the saved set reproduces the measured accuracy exactly.
    assert evaluate(out, progress=False).accuracy_mean == acc["accuracy_mean"]


def test_random_init_evaluates_on_heldout_inits(tmp_path):
    data = distill(
        **TINY,
        init="random",
        inits_per_iteration=2,
        iterations=20,
        eval_models=3,
        out=str(tmp_path / "r"),
        progress=False,
    )
    result = evaluate(data, models=5, progress=False)
    assert result.n_models == 5 and len(set(result.accuracies_before)) > 1
    assert result.accuracy_mean > result.accuracy_before_mean


def test_reverse_and_autograd_distil_the_same(tmp_path):
    a = distill(**TINY, iterations=5, out=str(tmp_path / "a"), progress=False)
    b = distill(**TINY, iterations=5, meta_grad="reverse", out=str(tmp_path / "b"), progress=False)
    torch.testing.assert_close(a.images, b.images, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.lrs, b.lrs, rtol=1e-4, atol=1e-7)


def _cli(out: Path, *extra: str) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "datadistill",
        "distill",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--steps",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--iterations",
        "60",
        "--checkpoint-every",
        "5",
        "--eval-every",
        "1000",
        "--out",
        str(out),
        *extra,
    ]
    return args


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_cli(straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / PREVIOUS_CHECKPOINT).exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "distilled.safetensors").exists(), "the run finished before it was killed"
    subprocess.run(_cli(killed, "--resume"), check=True, env=env, capture_output=True)
    # Whatever write the kill interrupted, no temporary of ours outlives the resumed run.
    assert not list(killed.glob(".*.tmp"))

    a, b = _tensors(straight), _tensors(killed)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    out = tmp_path / "run"
    distill(**TINY, iterations=10, checkpoint_every=5, out=str(out), progress=False)
    (out / "distilled.safetensors").unlink()
    raw = bytearray((out / CHECKPOINT).read_bytes())
    raw[-20:] = bytes(
        b ^ 0xFF for b in raw[-20:]
    )  # flip tensor bytes: the stored sha256 no longer matches
    (out / CHECKPOINT).write_bytes(bytes(raw))
    data = distill(
        **TINY, iterations=10, checkpoint_every=5, out=str(out), resume=True, progress=False
    )
    err = capsys.readouterr().err
    assert "corrupted" in err and "previous checkpoint" in err
    assert data.images.shape == (2, 10, 1, 8, 8)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--lr-init", "-0.1"], "--lr-init must be a positive number"),
        (["--model", "lenet"], "lenet needs inputs of at least"),
        (["--dataset", "mnistt"], "mnist"),
        (["--init", "pretrained-random"], "--pretrained"),
        (["--pad", "-1"], "--pad must be a whole number of pixels >= 0"),
        (
            ["--init-scheme", "he"],
            "--init-scheme must be one of xavier, kaiming, orthogonal, default",
        ),
    ],
)
def test_nonsense_settings_give_one_line_errors_and_touch_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("saved work")
    status = main(["distill", "--out", str(out), "--iterations", "1", *args])
    err = capsys.readouterr().err
    assert status != 0
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_unknown_yaml_key_names_the_key_and_file(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: digits\nstepz: 3\n")
    assert main(["distill", "--config", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert "stepz" in err and "bad.yaml" in err and "steps" in err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    distill(**TINY, iterations=3, out=str(out), progress=False)
    before = (out / "distilled.safetensors").read_bytes()
    assert main(["distill", "--dataset", "digits", "--out", str(out), "--iterations", "3"]) != 0
    assert "--resume" in capsys.readouterr().err
    assert (out / "distilled.safetensors").read_bytes() == before


def _poison_meta_grad(monkeypatch, *, after_calls: int = 0):
    """Make distillation's meta-gradient return a NaN loss from call ``after_calls + 1`` on."""
    grads_module = importlib.import_module("datadistill.outer_grads")
    real = grads_module.meta_grad
    calls = []

    def poisoned(*args, **kwargs):
        calls.append(None)
        g = real(*args, **kwargs)
        if len(calls) > after_calls:
            g.loss = g.loss * float("nan")
        return g

    monkeypatch.setattr(grads_module, "meta_grad", poisoned)


def test_divergence_stops_with_the_last_good_checkpoint_and_keeps_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    distill(**TINY, iterations=4, checkpoint_every=2, out=str(out), progress=False)
    (out / "distilled.safetensors").unlink()
    saved = (out / CHECKPOINT).read_bytes()

    _poison_meta_grad(monkeypatch)
    with pytest.raises(DistillationDiverged) as raised:
        distill(**TINY, iterations=8, checkpoint_every=2, out=str(out), resume=True, progress=False)
    # Both kept checkpoints are named: the last may already hold a set that was going bad.
    assert (
        f"last good checkpoint: {out / CHECKPOINT} (the one before it: {out / PREVIOUS_CHECKPOINT};"
        in str(raised.value)
    )
    assert (out / CHECKPOINT).read_bytes() == saved


def test_a_run_that_diverges_before_its_first_checkpoint_can_be_run_again(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patched:
        _poison_meta_grad(patched)
        with pytest.raises(
            DistillationDiverged, match="no checkpoint was written yet; .*run the same"
        ):
            distill(**TINY, iterations=4, checkpoint_every=2, out=str(out), progress=False)
    assert [p.name for p in out.iterdir()] == ["config.yaml"]  # nothing to resume, nothing to force
    distill(**TINY, iterations=4, checkpoint_every=2, out=str(out), progress=False)
    assert (out / "distilled.safetensors").is_file()


def test_the_last_good_checkpoint_is_one_whose_next_step_was_finite(tmp_path, monkeypatch):
    """A state whose very next meta-loss is NaN is never checkpointed: resuming from it would diverge
    again at once whatever --lr (the lower lr acts only after that loss)."""
    from safetensors import safe_open

    out = tmp_path / "run"
    _poison_meta_grad(
        monkeypatch, after_calls=2
    )  # the steps from states 0 and 1 are finite, 2's not
    with pytest.raises(DistillationDiverged, match="at iteration 2; last good checkpoint"):
        distill(**TINY, iterations=8, checkpoint_every=1, out=str(out), progress=False)
    with safe_open(str(out / CHECKPOINT), "pt") as saved:
        assert saved.metadata()["iteration"] == "1"


def test_a_rank_that_writes_no_checkpoints_names_rank_0s_when_the_run_diverges(
    tmp_path, monkeypatch
):
    # Under torchrun only rank 0 writes checkpoints; every rank raises the divergence (the loss is
    # all-reduced), and each must name the checkpoint rank 0 wrote, not "no checkpoint was written yet".
    out = tmp_path / "run"
    _poison_meta_grad(monkeypatch, after_calls=3)
    distill_module = sys.modules["datadistill.distill"]  # the package attribute is the function
    monkeypatch.setattr(distill_module, "init_world", lambda device: World(rank=1, size=1))
    with pytest.raises(DistillationDiverged) as raised:
        distill(**TINY, iterations=8, checkpoint_every=2, out=str(out), progress=False)
    assert f"last good checkpoint: {out / CHECKPOINT}" in str(raised.value)
    assert "iteration 3" in str(raised.value)


def test_collapse_is_learning_then_chance_not_a_slow_start():
    chance = math.log(10)
    learned = [2.3, 1.8, 1.2, 0.9]
    assert collapsed(learned + [chance] * 6, 10, window=5)
    assert not collapsed(learned + [chance] * 4 + [0.8], 10, window=5)  # recovered
    assert not collapsed([chance] * 50, 10, window=5)  # never learned: a slow start, no alarm
    assert not collapsed(learned, 10, window=5)  # too short to tell


def test_a_collapsed_run_is_told_once_and_goes_on(tmp_path, monkeypatch, capsys):
    distill_module = sys.modules["datadistill.distill"]
    grads_module = importlib.import_module("datadistill.outer_grads")
    real = grads_module.meta_grad
    calls = []

    def collapsing(*args, **kwargs):
        g = real(*args, **kwargs)
        calls.append(1)
        if len(calls) > 25:  # after learning for 25 iterations, the net predicts uniformly
            g.loss = torch.tensor(math.log(10))
        return g

    monkeypatch.setattr(grads_module, "meta_grad", collapsing)
    monkeypatch.setattr(distill_module, "COLLAPSE_WINDOW", 8)
    data = distill(**TINY, iterations=50, out=str(tmp_path / "run"), progress=False)
    err = capsys.readouterr().err
    assert err.count("has likely collapsed") == 1 and "another --seed" in err
    assert data.manifest["iterations"] == 50


def test_evaluate_cli_writes_the_contract_json(tmp_path, capsys):
    out = tmp_path / "run"
    distill(**TINY, iterations=3, out=str(out), progress=False)
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--models", "1", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    for key in ("accuracy_mean", "accuracy_std", "n_models", "accuracy_before_mean"):
        assert key in result
    assert result["n_models"] == 1
    assert "replay" in capsys.readouterr().out


def test_pad_goes_through_config_manifest_and_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--model", "mlp", "--steps", "2", "--epochs", "1"]
                + ["--iterations", "2", "--resize", "6", "--pad", "1", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    data = DistilledData.load(out)
    assert data.images.shape == (2, 10, 1, 8, 8)  # 6x6 + a 1-pixel border each side
    assert data.manifest["resize"] == 6 and data.manifest["pad"] == 1
    cfg = load_config(DistillConfig, out / "config.yaml")
    assert (cfg.resize, cfg.pad) == (6, 1)
    # Evaluation rebuilds the 6x6 + pad 1 data from the manifest: fixed init, same accuracy.
    result = evaluate(out, progress=False)
    assert result.accuracy_mean == data.manifest["accuracy"]["accuracy_mean"]


def test_manifest_without_pad_still_evaluates(tmp_path):
    # Manifests written before the pad option have no "pad" key: they mean no padding.
    out = tmp_path / "run"
    data = distill(**TINY, iterations=3, out=str(out), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest.pop("pad") is None
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = evaluate(out, progress=False)
    assert result.accuracy_mean == data.manifest["accuracy"]["accuracy_mean"]


def test_vmapped_inits_distil_like_one_by_one(tmp_path):
    kw = dict(
        TINY, init="random", inits_per_iteration=3, iterations=3, eval_models=2, progress=False
    )
    a = distill(**kw, out=str(tmp_path / "a"))
    b = distill(**kw, vmap_inits=True, out=str(tmp_path / "b"))
    # float32 summation order differs; Adam's normalised steps are 0.05 per iteration, far above this.
    torch.testing.assert_close(a.images, b.images, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(a.lrs, b.lrs, rtol=1e-4, atol=1e-7)


def test_show_summarises_and_redraws_the_grids(tmp_path, capsys):
    out = tmp_path / "run"
    distill(**TINY, iterations=2, out=str(out), progress=False)
    (out / "steps.png").unlink()
    assert main(["show", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits" in printed and "lrs: min" in printed
    assert (out / "steps.png").is_file()


def test_evaluate_cli_offers_the_dataset_protocol_and_labels_it(tmp_path, capsys):
    out = tmp_path / "run"
    distill(**TINY, iterations=3, out=str(out), progress=False)
    report = tmp_path / "eval.json"
    args = ["evaluate", str(out), "--protocol", "dataset", "--epochs", "5", "--models", "1"]
    assert main([*args, "--json", str(report)]) == 0
    assert json.loads(report.read_text())["protocol"] == "dataset"
    assert "| dataset |" in capsys.readouterr().out


@pytest.mark.parametrize("meta_grad", ["autograd", "reverse"])
def test_learned_labels_with_fewer_images_than_classes(tmp_path, meta_grad):
    out = tmp_path / "run"
    data = distill(
        **TINY,
        learn_labels=True,
        images_per_step=5,
        iterations=30,
        meta_grad=meta_grad,
        out=str(out),
        progress=False,
    )
    assert data.labels.shape == (2, 5, 10) and data.labels.is_floating_point()
    start = class_cover(5, 1, 10).float() * 4.4
    assert not torch.allclose(data.labels[0], start)  # the labels were learned
    loaded = DistilledData.load(out)
    assert loaded.soft_labels and torch.equal(loaded.labels, data.labels)
    # 5 soft-labelled images per step still teach more than chance about 10 classes.
    assert data.manifest["accuracy"]["accuracy_mean"] > 30.0


def test_free_label_targets_are_learned_saved_and_replayed(tmp_path):
    out = tmp_path / "run"
    data = distill(
        **TINY,
        learn_labels=True,
        label_targets="free",
        images_per_step=5,
        iterations=30,
        out=str(out),
        progress=False,
    )
    start = (
        class_cover(5, 1, 10).float() / 2
    )  # each image starts as an even split over its 2 classes
    assert not torch.allclose(data.labels[0], start)  # learned
    # Free targets are not a distribution: their sums drift away from one.
    assert not torch.allclose(data.labels.sum(-1), torch.ones(2, 5))
    assert torch.equal(data.targets(), data.labels)
    loaded = DistilledData.load(out)
    assert loaded.label_targets == "free" and loaded.manifest["label_targets"] == "free"
    # Replaying the saved set reproduces the accuracy measured at the end of distillation.
    again = evaluate(out, models=1)
    assert again.accuracy_mean == pytest.approx(data.manifest["accuracy"]["accuracy_mean"])
    assert again.accuracy_mean > 30.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label-targets", "free"], "--label-targets free needs --learn-labels"),
        (
            ["--learn-labels", "--label-targets", "raw"],
            "--label-targets must be 'softmax' or 'free'",
        ),
    ],
)
def test_label_target_settings_are_checked(tmp_path, capsys, args, message):
    status = main(["distill", "--out", str(tmp_path / "run"), "--iterations", "1", *args])
    err = capsys.readouterr().err
    assert status != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_val_size_keeps_the_iterate_best_on_held_out_training_images(tmp_path):
    out = tmp_path / "run"
    data = distill(
        **{**TINY, "eval_every": 5}, val_size=300, iterations=30, out=str(out), progress=False
    )
    history = json.loads((out / "metrics.json").read_text())
    scored = [(r["val_accuracy"], r["iteration"]) for r in history if "val_accuracy" in r]
    assert [it for _, it in scored] == [5, 10, 15, 20, 25, 30]
    best_score = max(score for score, _ in scored)
    first_best = next(it for score, it in scored if score == best_score)  # ties keep the earlier
    m = data.manifest
    assert m["val_size"] == 300 and m["val_accuracy"] == best_score
    assert m["selected_iteration"] == first_best and m["iterations"] == 30
    # The saved set is the selected iterate: replaying it reproduces the manifest's test accuracy.
    again = evaluate(out, models=1)
    assert again.accuracy_mean == pytest.approx(m["accuracy"]["accuracy_mean"])


def test_val_size_resumes_bit_for_bit_with_its_best_iterate(tmp_path):
    settings = {**TINY, "eval_every": 5, "checkpoint_every": 5, "val_size": 300, "progress": False}
    straight, split = tmp_path / "straight", tmp_path / "split"
    distill(**settings, iterations=20, out=str(straight))
    distill(**settings, iterations=10, out=str(split))
    (
        split / "distilled.safetensors"
    ).unlink()  # a finished run's folder, continued with more iterations
    distill(**settings, iterations=20, out=str(split), resume=True)
    a, b = _tensors(straight), _tensors(split)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (straight, split))
    assert ma["selected_iteration"] == mb["selected_iteration"]
    with pytest.raises(ValueError, match="eval_every"):  # would move the candidate iterates
        distill(**{**settings, "eval_every": 2}, iterations=25, out=str(split), resume=True)


@pytest.mark.parametrize(
    "value, message",
    [("-1", "--val-size must be a whole number"), ("1000", "would hold out more than half")],
)
def test_val_size_nonsense_is_refused(tmp_path, capsys, value, message):
    status = main(
        ["distill", "--out", str(tmp_path / "run"), "--iterations", "1", "--val-size", value]
    )
    err = capsys.readouterr().err
    assert status != 0 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_init_noise_perturbs_each_tensor_by_its_rms_and_resumes_bit_for_bit(tmp_path):
    from datadistill.outer_grads import perturbed

    params = {"w": torch.randn(200, 300) * 3.0, "b": torch.zeros(5)}
    assert perturbed(params, 0.0, torch.Generator().manual_seed(0)) is params
    noisy = perturbed(params, 0.1, torch.Generator().manual_seed(0))
    again = perturbed(params, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(noisy["w"], again["w"])
    relative = (noisy["w"] - params["w"]).pow(2).mean().sqrt() / params["w"].pow(2).mean().sqrt()
    assert relative.item() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(noisy["b"], params["b"])  # zero tensors have no scale to perturb by

    settings = {
        **TINY,
        "init": "random",
        "init_noise": 0.2,
        "checkpoint_every": 5,
        "progress": False,
    }
    straight, split = tmp_path / "straight", tmp_path / "split"
    clean = distill(**{**settings, "init_noise": 0.0}, iterations=10, out=str(tmp_path / "clean"))
    data = distill(**settings, iterations=10, out=str(straight))
    assert data.manifest["init_noise"] == 0.2
    assert not torch.equal(data.images, clean.images)  # the noise reached the meta-gradients
    distill(**settings, iterations=5, out=str(split))
    (split / "distilled.safetensors").unlink()
    resumed = distill(**settings, iterations=10, out=str(split), resume=True)
    assert torch.equal(resumed.images, data.images) and torch.equal(resumed.lrs, data.lrs)


def test_init_noise_nonsense_is_refused(tmp_path, capsys):
    status = main(["distill", "--out", str(tmp_path / "run"), "--init-noise", "-0.5"])
    err = capsys.readouterr().err
    assert status != 0 and "--init-noise must be a number >= 0" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_help_shows_the_help_text_of_settings(capsys):
    """Help texts of several words reach --help whole (config.py's field metadata)."""
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, words in [
        ("--val-size", "hold out N training images"),
        ("--init-noise", "distillation only"),
        ("--decay-every", "every 10% of iterations"),
        ("--schedule", "whichever of the two comes first"),
    ]:
        assert words in text, flag


# --- the dataset protocol: unrolled minibatch training, random truncated windows --------------------------

FIELD_TINY = dict(
    dataset="digits",
    model="mlp",
    protocol="dataset",
    init="random",
    images_per_class=2,
    unroll=12,
    window=4,
    inner_batch=8,
    inits_per_iteration=2,
    batch_size=256,
    eval_every=10,
    eval_models=3,
    lr=0.02,
    lr_init=0.05,
    schedule="step",
    decay_every=1000,
    learn_labels=True,
)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_dataset_protocol_learns_and_records_its_recipe(tmp_path, optimizer):
    lr_init = 0.002 if optimizer == "adam" else 0.05
    data = distill(
        **{**FIELD_TINY, "inner_optimizer": optimizer, "lr_init": lr_init},
        iterations=20,
        out=str(tmp_path / optimizer),
        progress=False,
    )
    m = data.manifest
    assert data.images.shape == (1, 20, 1, 8, 8) and data.lrs.shape == (1,)
    assert data.labels.shape == (1, 20, 10)  # learned labels work with the protocol
    assert m["protocol"] == "dataset" and m["accuracy"]["protocol"] == "dataset"
    assert m["recipe"]["optimizer"] == optimizer and m["recipe"]["updates"] == 12
    assert m["recipe"]["window"] == 4 and m["recipe"]["batch_size"] == 8
    history = json.loads((tmp_path / optimizer / "metrics.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert m["accuracy"]["accuracy_mean"] > m["accuracy"]["accuracy_before_mean"] + 15


@pytest.mark.parametrize("augment", ["none", "dsa"])
def test_dataset_protocol_resumes_bit_for_bit(tmp_path, augment):
    _, resumed = _resume_matches_straight({**FIELD_TINY, "inner_augment": augment}, tmp_path, 10)
    assert resumed.manifest["recipe"]["augment"] == augment


def test_dataset_protocol_vmapped_inits_learn_like_a_loop_and_resume_bit_for_bit(
    tmp_path, monkeypatch
):
    calls = []
    module = importlib.import_module("datadistill.outer_grads")
    batched_fn = module.batched_truncated_meta_grad
    monkeypatch.setattr(
        module,
        "batched_truncated_meta_grad",
        lambda *a, **k: calls.append(len(a[1])) or batched_fn(*a, **k),
    )
    one = {**FIELD_TINY, "inits_per_iteration": 1}
    loop = distill(**one, iterations=4, out=str(tmp_path / "loop"), progress=False)
    batched = distill(
        **one, vmap_inits=True, iterations=4, out=str(tmp_path / "vmap"), progress=False
    )
    # One init draws the same window and minibatches either way; only float32 summation order differs.
    for name in ("images", "labels", "lrs"):
        torch.testing.assert_close(
            getattr(batched, name), getattr(loop, name), rtol=1e-4, atol=1e-4
        )
    assert calls == [1] * 4  # the batched path ran, once per iteration
    straight, _ = _resume_matches_straight({**FIELD_TINY, "vmap_inits": True}, tmp_path, 6)
    assert straight.manifest["accuracy"]["protocol"] == "dataset" and calls[-1] == 2


def test_vmapped_inits_refuse_per_init_augmentation_in_one_line(tmp_path, capsys):
    _refused_in_one_line(
        tmp_path,
        capsys,
        ["distill", "--dataset", "digits", "--protocol", "dataset", "--init", "random"]
        + ["--vmap-inits", "--inner-augment", "dsa"],
        "--vmap-inits shares one minibatch order between the inits",
    )


def test_inner_augmentation_needs_the_dataset_protocol():
    with pytest.raises(
        ValueError, match="--inner-augment augments the dataset protocol's minibatches"
    ):
        DistillConfig(dataset="digits", inner_augment="dsa").validate()


def test_dataset_protocol_with_a_fixed_lr_keeps_it(tmp_path):
    data = distill(
        **FIELD_TINY, learn_lr=False, iterations=5, out=str(tmp_path / "r"), progress=False
    )
    assert data.lrs.item() == pytest.approx(0.05, rel=1e-6)
    assert data.manifest["recipe"]["learned_lr"] is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--window", "20", "--unroll", "10"], "--window 20 is longer than --unroll 10"),
        (["--window", "0"], "--window must be a positive integer"),
        (["--unroll", "-3"], "--unroll must be a positive integer"),
        (["--inner-batch", "0"], "--inner-batch must be a positive integer"),
        (["--inner-optimizer", "rmsprop"], "--inner-optimizer must be one of sgd, momentum, adam"),
        (["--steps", "10"], "leave --steps and --epochs at 1"),
        (["--meta-grad", "reverse"], "use --meta-grad autograd"),
        (["--inner-augment", "flip"], "--inner-augment"),
        (["--learn-labels", "--label-targets", "free"], "use --label-targets softmax"),
    ],
)
def test_dataset_protocol_flags_refuse_bad_values_in_one_line(tmp_path, capsys, flags, message):
    args = ["distill", "--dataset", "digits", "--protocol", "dataset"]
    _refused_in_one_line(tmp_path, capsys, [*args, *flags], message)


def test_unknown_protocol_is_refused(capsys, tmp_path):
    from datadistill.cli import main

    assert main(["distill", "--protocol", "field", "--out", str(tmp_path / "r")]) == 1
    assert "--protocol must be one of replay, dataset" in capsys.readouterr().err


# --- the outer Adam lr schedule ----------------------------------------------------------------------------

QUICK = dict(  # 300 iterations in a few seconds: one step of ten digits, small real batches
    dataset="digits",
    model="mlp",
    steps=1,
    epochs=1,
    batch_size=32,
    lr=0.05,
    lr_init=0.1,
    eval_every=1000,
    checkpoint_every=1000,
    eval_models=1,
    progress=False,
)


def _lrs(folder: Path) -> list[float]:
    return [r["lr"] for r in json.loads((folder / "metrics.json").read_text())]


def test_cosine_default_leaves_a_short_run_its_lr_where_step_halves_it_ten_times(tmp_path):
    distill(**QUICK, iterations=300, out=str(tmp_path / "cosine"))
    distill(**QUICK, iterations=300, schedule="step", out=str(tmp_path / "step"))
    cosine, step = _lrs(tmp_path / "cosine"), _lrs(tmp_path / "step")
    assert len(cosine) == len(step) == 300
    assert step[-1] == 0.05 / 512  # the paper's default: nine halvings by the last tenth
    # The cosine ends just above its floor, 5% of the start, whatever the run's length.
    assert 0.05 * 0.05 < cosine[-1] < 0.05 * 0.051
    assert cosine[0] == 0.05 and all(a >= b for a, b in zip(cosine, cosine[1:], strict=False))
    assert sum(cosine) > 2 * sum(step)


def test_step_schedule_sets_the_papers_lrs_exactly(tmp_path):
    distill(**QUICK, iterations=30, schedule="step", out=str(tmp_path / "a"))
    assert _lrs(tmp_path / "a") == [0.05 * 0.5 ** (i // 3) for i in range(30)]
    distill(
        **QUICK,
        iterations=12,
        schedule="step",
        decay_every=5,
        decay_factor=0.25,
        out=str(tmp_path / "b"),
    )
    assert _lrs(tmp_path / "b") == [0.05 * 0.25 ** (i // 5) for i in range(12)]


def test_cosine_schedule_resumes_bit_for_bit(tmp_path):
    straight = distill(**{**QUICK, "checkpoint_every": 7}, iterations=20, out=str(tmp_path / "a"))
    # The same run, continued from its checkpoint at iteration 14 (the newest one is removed).
    folder = tmp_path / "a"
    (folder / CHECKPOINT).unlink()
    (folder / "distilled.safetensors").unlink()
    assert load_tensors(folder / PREVIOUS_CHECKPOINT, with_metadata=True)[1]["iteration"] == "14"
    resumed = distill(
        **{**QUICK, "checkpoint_every": 7}, iterations=20, out=str(folder), resume=True
    )
    for name in ("images", "labels", "lrs"):
        assert torch.equal(getattr(straight, name), getattr(resumed, name)), name
    assert _lrs(folder)[14:] == [outer_lr(DistillConfig(**_settings(QUICK), iterations=20), i,
                                          i / 20) for i in range(14, 20)]  # fmt: skip


def _settings(values: dict) -> dict:
    return {k: v for k, v in values.items() if k != "progress"}


def test_time_limited_cosine_reaches_its_floor_by_the_limit_and_checks_the_last_set(tmp_path):
    data = distill(
        **QUICK, iterations=10**6, time_limit=0.02, val_size=100, out=str(tmp_path / "t")
    )
    lrs = _lrs(tmp_path / "t")
    assert data.manifest["iterations"] == len(lrs) < 10**6  # the clock, not the count, ended it
    # The set at the limit was scored (no --eval-every point came before), so it is the result.
    last = json.loads((tmp_path / "t" / "metrics.json").read_text())[-1]
    assert "accuracy" in last and data.manifest["val_accuracy"] == last["val_accuracy"]
    assert data.manifest["selected_iteration"] == len(lrs)
    assert lrs[0] == pytest.approx(0.05, rel=1e-3)
    assert lrs[-1] < 0.05 * 0.2  # the iteration count alone would barely have moved it
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schedule", "linear"], "--schedule must be one of cosine, step"),
        (["--decay-every", "50"], "add --schedule step"),
        (["--decay-factor", "0.3"], "add --schedule step"),
        (["--final-lr-fraction", "0"], "--final-lr-fraction must be in (0, 1]"),
        (["--schedule", "step", "--decay-factor", "1.5"], "--decay-factor must be in (0, 1]"),
    ],
)
def test_schedule_nonsense_gives_one_line(tmp_path, capsys, args, message):
    status = main(["distill", "--dataset", "digits", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert status == 1 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_checkpoint_from_before_schedules_resumes_only_with_the_step_schedule(tmp_path):
    from datadistill.checkpoint import check_compatible as _check_compatible
    from datadistill.config import to_dict

    old = {k: v for k, v in to_dict(DistillConfig(**TINY)).items() if k != "schedule"}
    _check_compatible(old, DistillConfig(**TINY), tmp_path)  # TINY asks for step: accepted
    cosine = {k: v for k, v in TINY.items() if k not in ("schedule", "decay_every")}
    with pytest.raises(ValueError, match="schedule: 'step' -> 'cosine'"):
        _check_compatible(old, DistillConfig(**cosine), tmp_path)


def test_history_times_distillation_without_the_curve_checks(tmp_path, monkeypatch):
    distill_module = sys.modules["datadistill.distill"]  # the package's `distill` is the function
    original = distill_module._evaluate_split

    def slow_check(*args, **kwargs):  # far slower than an iteration, even on a loaded machine
        time.sleep(1.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(distill_module, "_evaluate_split", slow_check)
    out = tmp_path / "run"
    data = distill(**{**TINY, "eval_every": 5}, iterations=20, out=str(out), progress=False)
    history = json.loads((out / "metrics.json").read_text())
    checks = [r for r in history if "accuracy" in r]
    assert [r["iteration"] for r in checks] == [5, 10, 15, 20]
    assert all(r["eval_seconds"] >= 1.0 for r in checks)
    elapsed = [r["elapsed_seconds"] for r in history]
    steps = [b - a for a, b in zip(elapsed, elapsed[1:], strict=False)]
    assert min(steps) > 0 and max(steps) < 1.0  # no check's sleep inside distillation time
    assert data.manifest["curve_seconds_this_session"] >= 4.0


# --- --extra-models: one set distilled for several networks -----------------------------------------------


def _first_step_meta_grads(tmp_path: Path, monkeypatch, **overrides):
    """``(the averaged gradients outer_step applies, [(network, MetaGrads) per init])`` of iteration 0."""
    driver = importlib.import_module("datadistill.distill")  # the module, not the function

    grads_module = importlib.import_module("datadistill.outer_grads")
    calls = []
    real = grads_module.truncated_meta_grad

    def recording(model, *args, **kwargs):
        grads = real(model, *args, **kwargs)
        calls.append((type(model).__name__, grads))
        return grads

    monkeypatch.setattr(grads_module, "truncated_meta_grad", recording)
    values = {**FIELD_TINY, "out": str(tmp_path / "r"), **overrides}
    cfg, model_arg = driver._resolve_config(None, values, None, None)
    run = driver._setup(cfg, model_arg, None, None)
    state = driver._start(run, None)
    driver.outer_step(run, state)
    return (state.images.grad, state.labels.grad), calls


def test_extra_models_average_the_meta_gradients_of_every_network(tmp_path, monkeypatch):
    (d_images, d_labels), calls = _first_step_meta_grads(
        tmp_path / "both", monkeypatch, extra_models=("linear",)
    )
    networks = [name for name, _ in calls]
    assert networks == ["MLP", "MLP", "LinearClassifier", "LinearClassifier"]  # k = 2 of each
    mean_images = torch.stack([g.images for _, g in calls]).mean(0)
    assert torch.allclose(d_images, mean_images, atol=1e-7)
    assert d_labels is not None  # learned labels get every network's gradient too
    # The main network's draws are those of a run without extra networks.
    _, alone = _first_step_meta_grads(tmp_path / "alone", monkeypatch)
    assert [name for name, _ in alone] == ["MLP", "MLP"]
    for (_, with_extra), (_, without) in zip(calls[:2], alone, strict=True):
        assert torch.equal(with_extra.images, without.images)


def test_extra_models_are_recorded_and_resume_bit_for_bit(tmp_path, capsys):
    cfg = {**FIELD_TINY, "extra_models": ("linear",)}
    straight, _ = _resume_matches_straight(cfg, tmp_path, 6)
    assert straight.manifest["extra_models"] == ["linear"]
    assert main(["show", str(tmp_path / "a")]) == 0
    shown = json.loads(capsys.readouterr().out.split("\naccuracy")[0])
    assert shown["extra_models"] == ["linear"] and shown["protocol"] == "dataset"
    with pytest.raises(ValueError, match="extra_models"):  # a different mix is another run
        distill(**{**cfg, "extra_models": ()}, iterations=8, out=str(tmp_path / "b"), resume=True)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--extra-models", "lenet"], "lenet needs inputs of at least 12x12 pixels"),
        (["--extra-models", "nosuchnet"], "nosuchnet"),
        (["--extra-models", "linear,linear"], "--extra-models names linear twice"),
        (["--extra-models", "mlp", "--model", "mlp"], "--extra-models names mlp twice"),
        (["--extra-models", "linear,mlp"], "--extra-models names mlp twice"),  # digits' default
        (["--extra-models", "linear", "--init", "fixed"], "use --init random"),
    ],
)
def test_extra_models_refuse_bad_values_in_one_line(tmp_path, capsys, flags, message):
    args = ["distill", "--dataset", "digits", "--protocol", "dataset", "--init", "random"]
    _refused_in_one_line(tmp_path, capsys, [*args, *flags], message)


def test_extra_models_need_the_dataset_protocol():
    with pytest.raises(ValueError, match="--extra-models distils one set for several networks"):
        DistillConfig(dataset="digits", extra_models=("linear",)).validate()
    assert DistillConfig(
        dataset="digits", protocol="dataset", init="random", extra_models="linear, mlp"
    ).validate().extra_models == ("linear", "mlp")


# --- learned labels with their own Adam lr (--label-lr) ----------------------------------------------------


def test_label_lr_moves_the_labels_at_its_own_rate_and_follows_the_schedule(tmp_path):
    cfg = {**FIELD_TINY, "decay_every": 2}
    same = distill(**cfg, iterations=4, out=str(tmp_path / "none"), progress=False)
    # --label-lr equal to --lr is the default: the same set, bit for bit, from two Adam groups.
    equal = distill(**cfg, label_lr=0.02, iterations=4, out=str(tmp_path / "eq"), progress=False)
    for name in ("images", "labels", "lrs"):
        assert torch.equal(getattr(same, name), getattr(equal, name)), name
    # One Adam step moves every entry by at most its lr, and the largest moves by almost exactly it.
    one = distill(**cfg, label_lr=0.3, iterations=1, out=str(tmp_path / "one"), progress=False)
    start = class_cover(20, 2, 10).float() * 4.4
    assert (one.labels[0] - start).abs().max().item() == pytest.approx(0.3, rel=1e-3)
    base = distill(**cfg, iterations=1, out=str(tmp_path / "base"), progress=False)
    assert torch.equal(one.images, base.images)  # the pixels' first step does not see the label lr
    # The label lr keeps its ratio to --lr when the step schedule halves it (iteration 3 runs at 1/2).
    four = distill(**cfg, label_lr=0.3, iterations=4, out=str(tmp_path / "four"), progress=False)
    lrs = _lrs(tmp_path / "four")
    assert lrs == [0.02, 0.02, 0.01, 0.01]
    groups = load_tensors(tmp_path / "four" / CHECKPOINT, with_metadata=True)[1]["param_groups"]
    assert [g["lr"] for g in json.loads(groups)] == pytest.approx([0.01, 0.15])
    assert not torch.equal(four.labels, same.labels)


def test_label_lr_resumes_bit_for_bit(tmp_path):
    cfg = {**FIELD_TINY, "label_lr": 0.2, "decay_every": 3}
    _resume_matches_straight(cfg, tmp_path, 6)
    with pytest.raises(ValueError, match="label_lr: 0.2 -> 0.1"):  # another label lr is another run
        distill(**{**cfg, "label_lr": 0.1}, iterations=8, out=str(tmp_path / "b"), resume=True)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--label-lr", "0.1"],
            "--label-lr sets the Adam lr of learned labels: it needs --learn-labels",
        ),
        (["--learn-labels", "--label-lr", "0"], "--label-lr must be a positive number"),
        (["--learn-labels", "--label-lr", "nan"], "--label-lr must be a positive number"),
    ],
)
def test_label_lr_refuses_bad_values_in_one_line(tmp_path, capsys, flags, message):
    _refused_in_one_line(tmp_path, capsys, ["distill", "--dataset", "digits", *flags], message)


# --- multi-formation (--formation) -------------------------------------------------------------------------


def test_formation_trains_on_decoded_images_starts_from_real_tiles_and_resumes(tmp_path, capsys):
    cfg = {**FIELD_TINY, "formation": 2, "init_images": "real", "learn_labels": False}
    straight, _ = _resume_matches_straight(cfg, tmp_path, 6)
    assert straight.images.shape == (1, 20, 1, 8, 8) and straight.formation == 2
    assert straight.manifest["formation"] == 2
    x, y = (
        straight.training_set()
    )  # what any trainer of the set trains on: F² images per stored one
    assert x.shape == (80, 1, 8, 8) and y.tolist() == [c for c in range(10) for _ in range(8)]
    start = distill(**cfg, iterations=1, learn="lrs", out=str(tmp_path / "c"), progress=False)
    assert not torch.equal(start.images[0, 0], start.images[0, 1])  # tiles drawn per image
    # each 4x4 tile of a stored image is a real digit downsampled, so its pixels stay in the data's range
    pixels = start.pixels()
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="formation: 2 -> 1"):  # another factor is another run
        distill(**{**cfg, "formation": 1}, iterations=8, out=str(tmp_path / "b"), resume=True)
    assert main(["evaluate", str(tmp_path / "a"), "--models", "1", "--epochs", "2"]) == 0
    assert "| dataset |" in capsys.readouterr().out
    # replayed in order, the stored images train as their decoded tiles too
    assert main(["evaluate", str(tmp_path / "a"), "--protocol", "replay", "--models", "2"]) == 0
    assert "| replay |" in capsys.readouterr().out


def test_kmeans_start_distils_resumes_bit_exact_and_records_its_kind(tmp_path):
    cfg = {**FIELD_TINY, "formation": 2, "init_images": "kmeans", "learn_labels": False}
    straight, _ = _resume_matches_straight(cfg, tmp_path, 4)
    assert straight.manifest["init_images"] == "kmeans"
    start = distill(**cfg, iterations=1, learn="lrs", out=str(tmp_path / "c"), progress=False)
    real = distill(
        **{**cfg, "init_images": "real"},
        iterations=1,
        learn="lrs",
        out=str(tmp_path / "r"),
        progress=False,
    )
    assert not torch.equal(start.images, real.images)
    # centroids are means of the class's digits: smoother than one digit, inside the data's range
    assert start.pixels().min() >= -1e-5 and start.pixels().max() <= 1 + 1e-5


def test_replay_with_formation_distils_resumes_and_evaluates_on_decoded_steps(tmp_path):
    cfg = {**TINY, "formation": 2, "init_images": "real", "eval_models": 3}
    straight, _ = _resume_matches_straight(cfg, tmp_path, 6)
    assert straight.images.shape == (2, 10, 1, 8, 8) and straight.manifest["formation"] == 2
    assert straight.steps().images.shape == (2, 40, 1, 8, 8)  # every step replays 40 decoded images
    again = evaluate(str(tmp_path / "a"), progress=False)  # a fixed init: its one network
    assert again.accuracy_mean == pytest.approx(straight.manifest["accuracy"]["accuracy_mean"])
    plain = distill(
        **{**cfg, "formation": 1}, iterations=6, out=str(tmp_path / "p"), progress=False
    )
    assert plain.steps().images.shape == (2, 10, 1, 8, 8)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--formation", "0"], "--formation must be a positive integer"),
        (["--formation", "3"], "--formation 3 must divide the image size 8x8"),
        (
            ["--formation", "8", "--init-images", "real", "--images-per-class", "4"],
            "needs 256 training images of every class",
        ),
        (
            ["--formation", "8", "--init-images", "kmeans", "--images-per-class", "4"],
            "--init-images kmeans needs 256 training images of every class",
        ),
    ],
)
def test_formation_refuses_bad_values_in_one_line(tmp_path, capsys, flags, message):
    args = ["distill", "--dataset", "digits", "--protocol", "dataset", "--init", "random"]
    _refused_in_one_line(tmp_path, capsys, [*args, *flags], message)


# --- going on from a distilled set (--init-images FOLDER) ----------------------------------------------------

HARD_LABELS = {**FIELD_TINY, "learn_labels": False}


def test_init_images_folder_starts_from_that_sets_pixels_and_step_size(tmp_path):
    first = distill(**HARD_LABELS, iterations=3, out=str(tmp_path / "first"), progress=False)
    on = distill(
        **HARD_LABELS,
        iterations=3,
        init_images=str(tmp_path / "first"),
        out=str(tmp_path / "on"),
        progress=False,
    )
    # The oracle: the same pixels and step size handed over through the Python API.
    by_hand = distill(
        **{**HARD_LABELS, "lr_init": first.lrs[0].item()},
        images=first.images,
        iterations=3,
        out=str(tmp_path / "by_hand"),
        progress=False,
    )
    torch.testing.assert_close(on.images, by_hand.images, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(on.lrs, by_hand.lrs, rtol=1e-5, atol=1e-7)
    assert not torch.equal(on.images, first.images)  # it went on distilling
    assert on.manifest["init_images"] == str(tmp_path / "first")
    assert on.manifest["iterations"] == 3 and on.manifest["iterations_before"] == 3
    third = distill(
        **HARD_LABELS,
        iterations=1,
        init_images=str(tmp_path / "on"),
        out=str(tmp_path / "third"),
        progress=False,
    )
    assert third.manifest["iterations_before"] == 6  # every iteration the set has had
    assert (
        by_hand.manifest["init_images"] == "noise" and by_hand.manifest["iterations_before"] is None
    )


def test_init_images_folder_resumes_from_the_checkpoint_alone(tmp_path):
    distill(**HARD_LABELS, iterations=3, out=str(tmp_path / "first"), progress=False)
    going_on = {**HARD_LABELS, "iterations": 4, "checkpoint_every": 2, "progress": False}
    going_on["init_images"] = str(tmp_path / "first")
    straight = distill(**going_on, out=str(tmp_path / "on"))
    # Back to the checkpoint of iteration 2, with the set it started from gone.
    (tmp_path / "on" / "distilled.safetensors").unlink()
    (tmp_path / "on" / CHECKPOINT).unlink()
    (tmp_path / "first").rename(tmp_path / "moved")
    resumed = distill(**going_on, out=str(tmp_path / "on"), resume=True)
    assert torch.equal(resumed.images, straight.images)
    assert torch.equal(resumed.lrs, straight.lrs)
    assert resumed.manifest["iterations_before"] == 3


def test_init_images_folder_refuses_a_set_that_does_not_fit_in_one_line(tmp_path, capsys):
    hard, soft, replay = tmp_path / "hard", tmp_path / "soft", tmp_path / "replay"
    distill(**HARD_LABELS, iterations=1, out=str(hard), progress=False)
    distill(**FIELD_TINY, iterations=1, out=str(soft), progress=False)
    distill(**TINY, iterations=1, out=str(replay), progress=False)
    other = tmp_path / "other"  # the same set, said to be of other data
    other.mkdir()
    (other / "distilled.safetensors").write_bytes((hard / "distilled.safetensors").read_bytes())
    manifest = json.loads((hard / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "mean": [0.5], "std": [0.25]}))
    field = ["distill", "--dataset", "digits", "--protocol", "dataset", "--init", "random"]
    field += ["--images-per-class", "2"]
    cases = [
        ([*field, "--init-images", str(tmp_path / "none")], "got '" + str(tmp_path / "none")),
        ([*field, "--init-images", str(tmp_path)], "no distilled set in"),
        ([*field[:-1], "3", "--init-images", str(hard)], "match its --steps, --images-per-class"),
        ([*field, "--init-images", str(soft)], "only sets with hard labels"),
        ([*field, "--init-images", str(other)], "distilled from other data"),
        (
            ["distill", "--dataset", "digits", "--model", "mlp", "--steps", "2", "--epochs", "3"]
            + ["--init-images", str(replay)],
            "that set has 4 step sizes, this run learns --steps x --epochs = 6",
        ),
    ]
    for flags, message in cases:
        _refused_in_one_line(tmp_path, capsys, flags, message)
    with pytest.raises(ValueError, match="both give starting pixels"):
        distill(**HARD_LABELS, init_images=str(hard), images=torch.zeros(1, 20, 1, 8, 8))


# --- --batch-per-rank: disjoint real batches for the processes of a torchrun job ---


def test_an_unknown_keyword_is_one_value_error_naming_the_closest_setting():
    # e.g. evaluate's --augment where distill's setting is inner_augment; refused before any work
    with pytest.raises(
        ValueError, match=r"'augment' is not one of the DistillConfig settings.*'inner_augment'"
    ):
        distill(dataset="digits", protocol="dataset", augment="dsa", progress=False)


@pytest.mark.parametrize(
    "images, message",
    [
        (
            np.zeros((1, 10, 1, 8, 8), np.float32),
            "images= takes the starting pixels as a float torch.Tensor",
        ),
        (torch.zeros(1, 10, 1, 8, 8, dtype=torch.int64), "got a torch.int64 tensor"),
        (torch.full((1, 10, 1, 8, 8), float("nan")), "images= holds NaN or infinite pixels"),
    ],
)
def test_starting_images_of_the_wrong_kind_are_refused_before_the_run(images, message, tmp_path):
    # NaN pixels were reported as a divergence with "lower --lr", which cannot help
    with pytest.raises(ValueError, match=message):
        distill(
            **{**TINY, "steps": 1},
            iterations=1,
            images=images,
            out=str(tmp_path / "r"),
            progress=False,
        )
    assert not (tmp_path / "r").exists()


def test_float64_starting_images_are_taken_as_float32(tmp_path):
    images = torch.randn(1, 10, 1, 8, 8, dtype=torch.float64)
    data = distill(
        **{**TINY, "steps": 1}, iterations=1, images=images, out=str(tmp_path / "r"), progress=False
    )
    assert data.images.dtype == torch.float32


def test_a_set_too_large_for_memory_is_refused_naming_the_flag(tmp_path, monkeypatch):
    from datadistill import memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda: 2**20)
    with pytest.raises(
        ValueError, match=r"2 steps x 10000 images of 1x8x8 .*choose fewer --images-per-class"
    ):
        distill(
            **TINY, images_per_class=1000, iterations=1, out=str(tmp_path / "r"), progress=False
        )
    assert not (tmp_path / "r").exists()  # refused before the run folder was made


def _dropout_mlp(in_shape, num_classes):
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(math.prod(in_shape), 16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(16, num_classes),
    )


def test_a_users_dropout_draws_from_the_run_seed_and_resumes_bit_for_bit(tmp_path):
    """A network's own random draws (dropout masks) came from torch's global generator: a resumed run, or
    one started after other draws, went another way."""
    cfg = {**FIELD_TINY, "model": _dropout_mlp, "vmap_inits": True}
    straight, _ = _resume_matches_straight(cfg, tmp_path, 6)
    torch.rand(7)  # the caller's own draws do not move the run
    again = distill(**cfg, iterations=6, out=str(tmp_path / "c"), progress=False)
    assert torch.equal(again.images, straight.images)
