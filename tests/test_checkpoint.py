"""Resumable state: a checkpoint restores every tensor and the optimiser exactly, keeps the one before it,
refuses settings that change the result and records the ones that may change."""

import json

import pytest
import torch

from datadistill.checkpoint import (
    CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    DistillState,
    check_compatible,
    check_run_folder,
    describe_changes,
    load_checkpoint,
    save_checkpoint,
)
from datadistill.config import DistillConfig, to_dict

TINY = dict(dataset="digits", model="mlp", steps=2, epochs=2, lr=0.05, lr_init=0.1)


def _state(seed: int, learned_labels: bool = False) -> DistillState:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, 1, 4, 4, generator=gen).requires_grad_()
    raw = torch.randn(4, generator=gen).requires_grad_()
    if learned_labels:
        labels = torch.randn(2, 3, 5, generator=gen).requires_grad_()
    else:
        labels = torch.randint(5, (2, 3), generator=gen)
    learned = [t for t in (images, raw, labels) if t.requires_grad]
    opt = torch.optim.Adam(learned, lr=0.01, betas=(0.5, 0.999))
    return DistillState(images, labels, raw, opt, 0, [])


def _take_steps(state: DistillState, n: int) -> None:
    for _ in range(n):
        state.optimizer.zero_grad()
        loss = state.images.pow(2).sum() + state.raw_lrs.sin().sum()
        if state.labels.is_floating_point():
            loss = loss + state.labels.cos().sum()
        loss.backward()
        state.optimizer.step()
        state.iteration += 1
        state.history.append({"iteration": state.iteration, "loss": loss.item()})


@pytest.mark.parametrize("learned_labels", [False, True])
def test_a_checkpoint_restores_tensors_optimizer_and_history_exactly(tmp_path, learned_labels):
    cfg = DistillConfig(**TINY)
    saved = _state(0, learned_labels)
    _take_steps(saved, 3)
    saved.best = saved.snapshot(55.0)
    save_checkpoint(tmp_path, saved, cfg)
    restored = _state(1, learned_labels)  # other values everywhere: all must be overwritten
    assert load_checkpoint(tmp_path, restored, cfg) == tmp_path / CHECKPOINT
    learned = ("images", "raw_lrs", "labels") if learned_labels else ("images", "raw_lrs")
    for name in learned:  # class labels are not learned: they come from the settings, not the file
        assert torch.equal(getattr(restored, name), getattr(saved, name)), name
    assert restored.iteration == 3 and restored.history == saved.history
    assert restored.best["iteration"] == 3 and restored.best["val_accuracy"] == 55.0
    # the same further steps from both give the same tensors: Adam's moments were restored too
    _take_steps(saved, 2)
    _take_steps(restored, 2)
    assert torch.equal(restored.images, saved.images)
    assert torch.equal(restored.raw_lrs, saved.raw_lrs)


def test_a_second_save_keeps_the_first_as_the_previous_checkpoint(tmp_path):
    cfg = DistillConfig(**TINY)
    state = _state(0)
    save_checkpoint(tmp_path, state, cfg)
    _take_steps(state, 1)
    save_checkpoint(tmp_path, state, cfg)
    (tmp_path / CHECKPOINT).write_bytes(b"damaged")
    restored = _state(1)
    assert load_checkpoint(tmp_path, restored, cfg) == tmp_path / PREVIOUS_CHECKPOINT
    assert restored.iteration == 0


def test_resuming_records_allowed_changes_and_refuses_others(tmp_path):
    state = _state(0)
    save_checkpoint(tmp_path, state, DistillConfig(**TINY, iterations=10))
    restored = _state(1)
    load_checkpoint(tmp_path, restored, DistillConfig(**TINY, iterations=20))
    (record,) = restored.resume_history
    assert record == {"iteration": 0, "changes": {"iterations": [10, 20]}}
    assert describe_changes(record) == "iterations 10 -> 20 from iteration 0"
    with pytest.raises(ValueError, match="settings differ from the checkpoint.*seed"):
        load_checkpoint(tmp_path, _state(1), DistillConfig(**TINY, iterations=10, seed=3))
    _take_steps(state, 3)
    save_checkpoint(tmp_path, state, DistillConfig(**TINY, iterations=10))
    with pytest.raises(
        ValueError, match="--iterations 2 is below the 3 iterations .* give --iterations 3"
    ):
        load_checkpoint(tmp_path, _state(1), DistillConfig(**TINY, iterations=2))


def test_nothing_to_resume_says_how_to_start(tmp_path):
    with pytest.raises(FileNotFoundError, match="run without --resume"):
        load_checkpoint(tmp_path, _state(0), DistillConfig(**TINY))


def test_checkpoint_from_before_a_new_setting_still_resumes(tmp_path):
    cfg = DistillConfig(**TINY)
    saved = {k: v for k, v in json.loads(json.dumps(to_dict(cfg))).items() if k != "label_targets"}
    check_compatible(saved, cfg, tmp_path / CHECKPOINT)  # default then = now: accepted
    with pytest.raises(ValueError, match="label_targets"):
        check_compatible(
            saved, DistillConfig(**TINY, learn_labels=True, label_targets="free"), tmp_path
        )


def test_run_folder_guard(tmp_path):
    cfg = DistillConfig(**TINY)
    check_run_folder(tmp_path / "new", cfg)  # a new folder is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        check_run_folder(tmp_path / "other", cfg)
    check_run_folder(tmp_path / "other", DistillConfig(**TINY, force=True))
    save_checkpoint(tmp_path / "other", _state(0), cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        check_run_folder(tmp_path / "other", DistillConfig(**TINY, force=True))
    check_run_folder(tmp_path / "other", DistillConfig(**TINY, resume=True))


def test_run_folder_never_lies_in_the_data_folder(tmp_path):
    images = tmp_path / "imgs"
    (images / "cat").mkdir(parents=True)
    for out in (images, images / "run", images / "cat" / ".." / "run"):
        with pytest.raises(ValueError, match="inside the data folder .*choose an --out outside it"):
            check_run_folder(out, DistillConfig(**{**TINY, "dataset": str(images), "force": True}))
    check_run_folder(tmp_path / "imgs-run", DistillConfig(**{**TINY, "dataset": str(images)}))


def test_label_gradient_chains_through_the_softmax():
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    d_targets = torch.randn(2, 3, 4, dtype=torch.float64)
    state = DistillState(torch.zeros(1), logits, torch.zeros(1), None, 0, [], "softmax")
    p = logits.softmax(-1)
    expected = p * (
        d_targets - (p * d_targets).sum(-1, keepdim=True)
    )  # Jacobian of softmax, transposed
    assert torch.allclose(state.label_grad(d_targets), expected)
    free = DistillState(torch.zeros(1), logits, torch.zeros(1), None, 0, [], "free")
    assert torch.equal(free.label_grad(d_targets), d_targets)


def test_a_checkpoint_refuses_to_go_on_from_other_data(tmp_path):
    state = _state(0)
    state.data_sha256 = "a" * 64
    save_checkpoint(tmp_path, state, DistillConfig(**TINY))
    same = _state(1)
    same.data_sha256 = "a" * 64
    load_checkpoint(tmp_path, same, DistillConfig(**TINY))
    other = _state(1)
    other.data_sha256 = "b" * 64
    with pytest.raises(
        ValueError,
        match=r"the data digits changed since .* \(sha256 aaaa.* recorded, bbbb.* found\)",
    ):
        load_checkpoint(tmp_path, other, DistillConfig(**TINY))


def test_resume_of_a_run_on_a_users_data_refuses_it_once_the_files_change(tmp_path, capsys):
    import numpy as np

    from datadistill.cli import main

    gen = np.random.default_rng(0)
    arrays = {
        "x_train": gen.integers(0, 256, (30, 8, 8), dtype=np.uint8),
        "y_train": np.arange(30) % 3,
        "x_test": gen.integers(0, 256, (9, 8, 8), dtype=np.uint8),
        "y_test": np.arange(9) % 3,
    }
    data, out = tmp_path / "mine.npz", tmp_path / "run"
    np.savez(data, **arrays)
    flags = ["--model", "mlp", "--steps", "1", "--epochs", "1", "--eval-models", "1"]
    assert main(["distill", "--dataset", str(data), *flags, "--iterations", "2",
                 "--checkpoint-every", "1", "--out", str(out)]) == 0  # fmt: skip
    arrays["x_train"][0] = 255 - arrays["x_train"][0]  # one image edited
    np.savez(data, **arrays)
    capsys.readouterr()
    assert main(["distill", "--resume", "--out", str(out), "--iterations", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert "changed since" in err and "restore it to resume" in err and len(err.splitlines()) == 1
    assert (
        json.loads((out / "manifest.json").read_text())["iterations"] == 2
    )  # the run is as it was


def test_giving_on_resume_the_value_a_default_stood_for_is_no_change(tmp_path):
    saved = to_dict(DistillConfig(**TINY))  # test_fraction None: 0.2 of each class held out
    assert check_compatible(saved, DistillConfig(**TINY, test_fraction=0.2), tmp_path) == {}
    with pytest.raises(ValueError, match=r"test_fraction: None -> 0.3"):
        check_compatible(saved, DistillConfig(**TINY, test_fraction=0.3), tmp_path)
