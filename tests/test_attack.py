"""Targeted poisoning (attack.py): the metrics, a short distilled attack beating the baselines, errors, CLI."""

import json
import math
from pathlib import Path

import pytest
import torch

from datadistill.artifacts import DistilledData
from datadistill.cli import main
from datadistill.config import AttackConfig, check_pair
from datadistill.experiments.attack import attack_table, run_attack
from datadistill.experiments.attack_baselines import BASELINES, baseline_images
from datadistill.experiments.attack_heatmap import attack_heatmap, save_heatmap
from datadistill.experiments.attack_report import DISTILLED, METRICS, attack_report, poison_metrics
from datadistill.experiments.pretrain import pretrain

# The embedded digits set (1437 train / 360 test images, 1x8x8) and the MLP: 4 pool nets for the attacker,
# 3 held-out victims, one epoch each (≈ 80% test accuracy), in a few seconds.
POOL = dict(dataset="digits", model="mlp", count=7, heldout=3, epochs=1, progress=False)
# A short attack: 5 images per class in one step; measured 99% success on the 3 victims after 60 iterations.
ATTACK = dict(
    dataset="digits",
    model="mlp",
    source_class=0,
    target_class=1,
    images_per_class=5,
    iterations=60,
    lr=0.05,
    lr_init=1.0,
    models=3,
    tune_models=2,
    lr_grid=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
    init_noise=0.0,  # the paper's objective: what the 99% above was measured with
    source_weight=1.0,
    progress=False,
)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("attack-pool") / "digits-mlp"
    pretrain(**POOL, out=out)
    return out


@pytest.fixture(scope="module")
def result(pool_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("attack-run")
    return run_attack(AttackConfig(**ATTACK, pretrained=str(pool_dir), out=str(out)))


def test_poison_metrics_on_a_hand_made_case():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    preds = torch.tensor([1, 1, 0, 2, 1, 0, 2, 2])
    m = poison_metrics(preds, labels, source_class=0, target_class=1)
    # 2 of the 4 class-0 images are predicted 1 (the others 0 and 2: not a success).
    assert m["success"] == pytest.approx(50.0)
    assert m["other"] == pytest.approx(75.0)  # classes 1 and 2: 3 of 4 right
    # 4 of 8 right: a class-0 image predicted 1 counts as wrong.
    assert m["overall"] == pytest.approx(50.0)
    # Swapping K and T measures another thing: class-1 images predicted 0 (1 of 2); the others
    # (classes 0 and 2) are right 3 times out of 6.
    m = poison_metrics(preds, labels, source_class=1, target_class=0)
    assert m["success"] == pytest.approx(50.0) and m["other"] == pytest.approx(50.0)


def test_poison_metrics_need_both_kinds_of_images():
    with pytest.raises(ValueError, match="images of class 3"):
        poison_metrics(torch.tensor([0, 1]), torch.tensor([0, 1]), 3, 1)


def test_report_keys_and_ranges(result, pool_dir):
    rows = result["rows"]
    assert [r["method"] for r in rows] == [DISTILLED, *BASELINES]
    assert result["pool"] == {
        "folder": str(pool_dir),
        "train": 4,
        "heldout": 3,
        "epochs": 1,
        "test_accuracy": result["pool"]["test_accuracy"],
    }
    for row in rows:
        assert row["n_models"] == 3 and len(row["per_network"]) == 3
        assert row["images"] == 5 * 10 and len(row["lrs"]) == 1 and row["lrs"][0] > 0
        for name in METRICS:
            assert 0.0 <= row[f"{name}_mean"] <= 100.0, (row["method"], name)
            assert 0.0 <= row[f"{name}_std"] <= 50.0
        # Before the step, pre-trained nets classify well and (almost) never call a 0 a 1.
        assert row["success_before_mean"] < 10.0
        assert row["other_before_mean"] > 60.0
    # Every method is measured on the same victims, so the "before" numbers agree exactly.
    assert len({r["other_before_mean"] for r in rows}) == 1
    on_disk = json.loads((Path(result["run_dir"]) / "attack.json").read_text())
    assert on_disk["rows"][0]["success_mean"] == pytest.approx(rows[0]["success_mean"])


def test_distilled_attack_succeeds_and_beats_class_t_images(result):
    rows = {r["method"]: r for r in result["rows"]}
    distilled = rows[DISTILLED]
    assert distilled["success_mean"] > 50.0, attack_table(result)
    assert distilled["success_mean"] > rows["class T"]["success_mean"] + 20.0, attack_table(result)


def test_attack_report_matches_the_run_and_rejects_a_task_set(result):
    data = DistilledData.load(f"{result['run_dir']}/distilled-0to1")
    again = attack_report(data, models=3)
    assert again["success_mean"] == pytest.approx(result["rows"][0]["success_mean"])
    # The attacker's own networks: a diagnostic of over-fitting, labelled so it is never taken for victims.
    seen = attack_report(data, models=4, on="pool")
    assert seen["n_models"] == 4 and seen["method"] == "distilled (attacker's pool nets)"
    with pytest.raises(ValueError, match="'heldout' or 'pool'"):
        attack_report(data, on="train")
    task = DistilledData(data.images, data.labels, data.lrs, {**data.manifest, "objective": "task"})
    with pytest.raises(ValueError, match="not 'poison'"):
        attack_report(task)


def test_baseline_images_are_drawn_from_the_right_class():
    images = torch.arange(12, dtype=torch.float32).reshape(12, 1, 1, 1)
    labels = torch.tensor([0, 1, 2] * 4)
    assert set(baseline_images("random K→T", images, labels, 0, 1, 3).flatten().tolist()) <= {
        0.0,
        3.0,
        6.0,
        9.0,
    }
    assert set(baseline_images("class T", images, labels, 0, 1, 3).flatten().tolist()) <= {
        1.0,
        4.0,
        7.0,
        10.0,
    }
    average = baseline_images("average K→T", images, labels, 0, 1, 3)
    assert average.shape == (3, 1, 1, 1) and torch.all(average == 4.5)
    with pytest.raises(ValueError, match="budget needs 5"):
        baseline_images("random K→T", images, labels, 0, 1, 5)


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [(3, 3, "both 3"), (10, 1, "not a class of digits"), (0, -1, "not a class of digits")],
)
def test_invalid_classes_give_a_clear_error(source, target, match, pool_dir, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_attack(
            AttackConfig(
                **{**ATTACK, "source_class": source, "target_class": target},
                pretrained=str(pool_dir),
                out=str(tmp_path),
            )
        )
    assert not (tmp_path / "distilled-3to3").exists()


def test_check_pair_and_config_validation():
    with pytest.raises(ValueError, match="different"):
        check_pair(2, 2)
    with pytest.raises(ValueError, match="integer"):
        check_pair(0.5, 1)
    with pytest.raises(ValueError, match="pretrained-random"):
        AttackConfig(init="random").validate(10)
    with pytest.raises(ValueError, match="--pool-heldout"):
        AttackConfig(pool_count=5, pool_heldout=5).validate(10)


def test_heatmap_covers_the_chosen_pairs(pool_dir, tmp_path):
    cfg = AttackConfig(**ATTACK, pretrained=str(pool_dir), out=str(tmp_path))
    png = tmp_path / "heat.png"
    success = attack_heatmap(cfg, png, iterations=3, models=2, classes=[0, 1])
    assert success.shape == (10, 10)
    assert math.isnan(success[0, 0]) and math.isnan(success[2, 3])
    assert 0.0 <= success[0, 1] <= 100.0 and 0.0 <= success[1, 0] <= 100.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second call reuses the distilled pairs (same settings) instead of failing on the folders.
    again = attack_heatmap(cfg, None, iterations=3, models=2, classes=[0, 1])
    assert torch.equal(again.nan_to_num(-1), success.nan_to_num(-1))


def test_save_heatmap_writes_a_png(tmp_path):
    grid = torch.full((3, 3), 50.0).fill_diagonal_(math.nan)
    path = save_heatmap(grid, ["a", "b", "c"], tmp_path / "h.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cli_prints_the_table(pool_dir, tmp_path, capsys):
    argv = [
        "attack",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--pretrained",
        str(pool_dir),
        "--source-class",
        "2",
        "--target-class",
        "5",
        "--images-per-class",
        "2",
        "--iterations",
        "5",
        "--models",
        "2",
        "--no-baselines",
        "--out",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "a.json"),
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "| distilled |" in out and "success K→T" in out and "class 2 -> 5" in out
    assert "held-out" not in err
    assert json.loads((tmp_path / "a.json").read_text())["rows"][0]["target_class"] == 5
    more = argv[:]
    more[more.index("--models") + 1] = "5"  # the pool holds 3 victims: said, and the rows say 3
    more[more.index("--out") + 1] = str(tmp_path / "run-5")
    assert main(more) == 0
    assert "--models 5 but the pool holds 3 held-out networks" in capsys.readouterr().err
    assert json.loads((tmp_path / "a.json").read_text())["rows"][0]["n_models"] == 3
    bad = argv[:]
    bad[bad.index("5", bad.index("--target-class"))] = "2"
    assert main(bad) == 1
    assert "both 2" in capsys.readouterr().err


def test_a_set_distilled_on_another_pool_is_not_reused(result, pool_dir, tmp_path):
    import shutil

    from datadistill.experiments.attack import distill_attack

    other_pool = tmp_path / "same-nets-elsewhere"
    shutil.copytree(pool_dir, other_pool)
    run = Path(result["run_dir"]) / "distilled-0to1"
    cfg = AttackConfig(**ATTACK, pretrained=str(pool_dir))
    assert distill_attack(cfg, run).lrs.numel() == 1  # same attack, same pool: reused
    with pytest.raises(FileExistsError, match="another distilled set"):
        distill_attack(AttackConfig(**ATTACK, pretrained=str(other_pool)), run)


def test_selection_needs_more_pool_nets_than_it_holds_back(pool_dir, tmp_path):
    cfg = AttackConfig(**ATTACK, pretrained=str(pool_dir), out=str(tmp_path), select=True)
    with pytest.raises(ValueError, match="sets aside 4 of the pool's training networks"):
        run_attack(cfg)
    with pytest.raises(ValueError, match="--init-noise"):
        AttackConfig(init_noise=-1.0).validate(10)


def test_default_noise_is_for_unknown_victims_only():
    assert AttackConfig().noise == 0.3  # pretrained-random: the step must not fit the pool's nets
    assert AttackConfig(init="pretrained-fixed").noise == 0.0  # the victim is the net distilled on
    assert AttackConfig(init_noise=0.1, init="pretrained-fixed").noise == 0.1  # asked for: kept
    assert AttackConfig().source_weight == 10.0


def test_source_weight_is_a_weighted_mean_and_one_is_the_papers_loss():
    import torch.nn.functional as F

    from datadistill.config import DistillConfig
    from datadistill.objectives import poison_objective

    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    params = dict(model.named_parameters())
    x, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    poisoned = torch.tensor([2, 1, 2, 2, 1, 2, 2, 1])  # K = 0 relabelled T = 2
    per_image = F.cross_entropy(model(x), poisoned, reduction="none")
    plain = poison_objective(x, y, 0, 2)(model, params)
    assert torch.allclose(plain, per_image.mean())
    w = torch.tensor([4.0, 1, 1, 4, 1, 1, 1, 1])
    weighted = poison_objective(x, y, 0, 2, source_weight=4.0)(model, params)
    assert torch.allclose(weighted, (w * per_image).sum() / w.sum())
    with pytest.raises(ValueError, match="needs --objective poison"):
        DistillConfig(source_weight=2.0).validate()
    with pytest.raises(ValueError, match="--source-weight must be a positive number"):
        AttackConfig(source_weight=0.0).validate(10)


def test_selected_attack_keeps_its_best_iterate_and_skips_the_held_back_nets(tmp_path):
    pool = tmp_path / "pool"
    pretrain(
        **{**POOL, "count": 9, "heldout": 3}, out=pool
    )  # 6 training nets: 2 sampled, 4 held back
    cfg = AttackConfig(
        **{**ATTACK, "iterations": 20, "init_noise": 0.1, "source_weight": 3.0},
        pretrained=str(pool),
        out=str(tmp_path / "run"),
        select=True,
        val_size=200,
        baselines=False,
    )
    result = run_attack(cfg)
    m = json.loads((Path(result["run_dir"]) / "distilled-0to1" / "manifest.json").read_text())
    assert m["val_size"] == 200 and 1 <= m["selected_iteration"] <= 20
    assert m["init_noise"] == 0.1 and m["source_weight"] == 3.0
    assert result["rows"][0]["n_models"] == 3
    history = json.loads((Path(result["run_dir"]) / "distilled-0to1" / "metrics.json").read_text())
    scores = [r["val_accuracy"] for r in history if "val_accuracy" in r]
    assert len(scores) == 20 and m["val_accuracy"] == max(scores)


def test_the_benchmark_scripts_pairs_are_checked_where_they_are_given():
    """benchmarks/attack.py's --pairs names itself, not the library's --source-class, when a pair is bad."""
    import argparse
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "attack.py"
    pairs = runpy.run_path(str(script))["_pairs"]
    assert pairs("0:1,3:8") == [(0, 1), (3, 8)]
    for text, message in [
        ("3:3", "attacks class 3 into itself"),
        ("3-4", "expected SOURCE:TARGET class pairs"),
        ("1:2:3", "expected SOURCE:TARGET class pairs"),
        ("-1:3", "classes are numbered from 0"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            pairs(text)


def test_the_attack_reads_its_data_one_way_for_pool_distillation_and_baselines(tmp_path):
    """--resize/--pad/--channels/--test-fraction reach the pool it pre-trains and the run it distils."""
    from datadistill.config import AttackConfig
    from datadistill.experiments.attack import _data_options, _distill_config

    cfg = AttackConfig(
        dataset="digits", pretrained=str(tmp_path / "pool"), source_class=0, target_class=1,
        resize=12, pad=2, channels=1, test_fraction=0.3,
    ).validate(10)  # fmt: skip
    distill_cfg = _distill_config(cfg, tmp_path / "run", 10, 2, 1000)
    options = {"resize": 12, "pad": 2, "channels": 1, "test_fraction": 0.3}
    assert _data_options(cfg) == options
    assert {k: getattr(distill_cfg, k) for k in options} == options
