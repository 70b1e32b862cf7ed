"""Targeted data poisoning with distilled images (Wang et al. 2018, §3.5, "different objectives").

An attacker distils a few images and one step size such that ONE gradient step on them makes already-trained
networks classify the test images of a source class K as a target class T, while the other classes keep
working. The distillation objective is the task loss on real data with the labels of K replaced by T
(``objectives.poison_objective``); the victim networks are pre-trained (``--init pretrained-random``: the
attacker does not know the victim's weights, only that it was trained like the nets of a pool).

Report (``attack_report``), each as mean ± std over held-out pre-trained networks, in percent:

- ``success``: fraction of class-K *test* images predicted as T after the step (before: usually ≈ 0);
- ``other``: accuracy on the test images of every class except K, before and after the step;
- ``overall``: accuracy on the whole test set (true labels), before and after.

Baselines with the same budget (one GD step on as many images as the distilled set, one lr tuned on a
validation split of the *training* data, never the test set):

- ``random K→T``, ``k-means K→T``, ``average K→T``: real images of class K (random, per-class k-means
  centroids, the class mean) labelled T;
- ``class T``: random real images of class T with their own label T.

The lr of each baseline is the one of a grid with the highest success on the validation split among the lrs
that cost the other classes at most ``max_other_drop`` (5) points of validation accuracy there: the baseline's
best attack under the constraint the distilled attack is judged by, so a huge lr that pushes every image to T
(high "success", other classes destroyed) is not chosen. Ties go to the smaller lr.

Example:
    >>> from datadistill.config import AttackConfig
    >>> from datadistill.experiments.attack import attack_table, run_attack
    >>> result = run_attack(AttackConfig(dataset="mnist", model="lenet", pretrained="pools/mnist",
    ...                                  source_class=0, target_class=1))  # doctest: +SKIP
    >>> print(attack_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from datadistill.artifacts import DISTILLED_FILE, DistilledData, write_json
from datadistill.config import (
    ATTACK_OUTPUTS,
    AttackConfig,
    DistillConfig,
    PretrainConfig,
    with_overrides,
)
from datadistill.data import ImageDataset, load_dataset
from datadistill.distributed import resolve_device
from datadistill.experiments.attack_baselines import run_baselines
from datadistill.experiments.attack_report import attack_report


def ensure_pool(cfg: AttackConfig, folder: Path) -> dict[str, Any]:
    """The manifest of the pool in ``folder``, pre-training it first when the folder holds none."""
    from datadistill.experiments.pretrain import MANIFEST_FILE, pretrain
    from datadistill.pools import read_manifest

    if (folder / MANIFEST_FILE).is_file():
        return read_manifest(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} is not empty but holds no finished pool ({MANIFEST_FILE}); delete it or pass "
            "another --pretrained folder"
        )
    return pretrain(
        PretrainConfig(
            dataset=cfg.dataset,
            model=cfg.model or default_model(cfg.dataset),
            count=cfg.pool_count,
            heldout=cfg.pool_heldout,
            epochs=cfg.pool_epochs,
            out=str(folder),
            data_dir=cfg.data_dir,
            **_data_options(cfg),
            seed=cfg.seed,
            device=cfg.device,
            progress=cfg.progress,
        )
    )


def _data_options(cfg: AttackConfig) -> dict[str, Any]:
    """How the attack's data is read, the same for the pool, the distillation and the baselines."""
    return dict(
        resize=cfg.resize, pad=cfg.pad, channels=cfg.channels, test_fraction=cfg.test_fraction
    )


def default_model(dataset: str) -> str:
    from datadistill.setting import DEFAULT_MODEL_FOR

    return DEFAULT_MODEL_FOR.get(dataset, "lenet")


def start_images(
    train: ImageDataset,
    images_per_class: int,
    source_class: int,
    target_class: int,
    start: str,
    seed: int,
) -> Tensor:
    """``[1, n, C, H, W]`` starting pixels of the distilled step, n = ``images_per_class`` · classes.

    Column j holds class ``j // images_per_class`` (``distill``'s layout, labels fixed). ``start="real"``
    fills every column with random real images of its class, which pre-trained networks already fit, so the
    first meta-gradients are tiny. ``start="poison"`` puts random real images of class K into the columns
    labelled T instead: the step then starts as a small "K relabelled T" attack, with the real images of the
    other classes anchoring them, and distillation refines it from there.
    """
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(train.num_classes):
        cls = source_class if (start == "poison" and c == target_class) else c
        pool = (train.labels == cls).nonzero().squeeze(1)
        picks.append(pool[torch.randint(len(pool), (images_per_class,), generator=gen)])
    return train.take(torch.cat(picks))[None]  # [1, n, C, H, W]


def distill_attack(
    cfg: AttackConfig,
    out: Path,
    *,
    iterations: int | None = None,
    eval_models: int | None = None,
    progress: bool | None = None,
) -> DistilledData:
    """Distil the attack of ``cfg`` into the run folder ``out`` (reused when it already holds that attack).

    One GD step (``steps=1, epochs=1``) on ``images_per_class`` images of each class with their fixed labels;
    pixels start from real images (``start_images``) and the step size is learned (``lr = softplus(raw)``).
    """
    from datadistill.distill import distill

    iterations = cfg.iterations if iterations is None else iterations
    if (out / DISTILLED_FILE).is_file():
        data = DistilledData.load(out)
        m = data.manifest
        same = (
            m.get("objective") == "poison"
            and (m.get("source_class"), m.get("target_class"))
            == (cfg.source_class, cfg.target_class)
            and m.get("iterations") == iterations
            and m.get("images_per_class") == cfg.images_per_class
            and m.get("init_noise", 0.0) == cfg.noise
            and m.get("source_weight", 1.0) == cfg.source_weight
            and (m.get("val_size", 0) > 0) == cfg.select
            and m.get("init") == cfg.init
            and m.get("pretrained")
            == (str(Path(cfg.pretrained).resolve()) if cfg.pretrained else None)
        )
        if not same:
            raise FileExistsError(
                f"{out} already holds another distilled set; choose another --out or delete it"
            )
        return data
    train = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir, **_data_options(cfg))
    images = start_images(
        train, cfg.images_per_class, cfg.source_class, cfg.target_class, cfg.start, cfg.seed
    )
    return distill(
        _distill_config(cfg, out, iterations, eval_models or cfg.models, len(train.labels)),
        images=images,
        progress=cfg.progress if progress is None else progress,
    )


def _distill_config(
    cfg: AttackConfig, out: Path, iterations: int, eval_models: int, num_train: int
) -> DistillConfig:
    """The distillation of the attack: one GD step on fixed-label images towards the poison objective."""
    return DistillConfig(
        dataset=cfg.dataset,
        model=cfg.model,
        init=cfg.init,
        pretrained=cfg.pretrained,
        objective="poison",
        source_class=cfg.source_class,
        target_class=cfg.target_class,
        steps=1,
        epochs=1,
        images_per_class=cfg.images_per_class,
        iterations=iterations,
        inits_per_iteration=cfg.inits_per_iteration,
        lr=cfg.lr,
        lr_init=cfg.lr_init,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        eval_models=eval_models,
        # Halve the Adam lr at every quarter of the run (every tenth stalls short runs).
        schedule="step",
        decay_every=max(iterations // 4, 1),
        init_noise=cfg.noise,
        source_weight=cfg.source_weight,
        # the same cap as the baselines' validation split: a fifth of the training images
        val_size=min(cfg.val_size, num_train // 5) if cfg.select else 0,
        # With selection, score 40 iterates; otherwise a curve point per quarter is enough.
        eval_every=max(iterations // (40 if cfg.select else 4), 1),
        checkpoint_every=max(iterations, 1),
        data_dir=cfg.data_dir,
        **_data_options(cfg),
        device=cfg.device,
        out=str(out),
    )


def resolve(cfg: AttackConfig) -> tuple[AttackConfig, Path, ImageDataset]:
    """Validate ``cfg`` against the data set and fill the run and pool folders."""
    train = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir, **_data_options(cfg))
    cfg.validate(train.num_classes)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.out or f"runs/attack-{Path(cfg.dataset).name}-{stamp}")
    if cfg.pretrained is None:
        cfg = replace(cfg, pretrained=str(out / "pool"))
    return replace(cfg, init_noise=cfg.noise), out, train


def run_attack(cfg: AttackConfig | None = None, **overrides: Any) -> dict[str, Any]:
    """Pool (reused or pre-trained) → distil the K→T attack → report it beside the baselines.

    Args:
        cfg: the settings; keyword ``overrides`` replace individual fields, e.g.
            ``run_attack(dataset="digits", model="mlp", pretrained="pool", iterations=100)``.

    Returns:
        ``{"config": {...}, "pool": {...}, "rows": [distilled row, baseline rows…], "run_dir": str}``; the
        same dict is written to ``<out>/attack.json``.
    """
    cfg = AttackConfig(**with_overrides(AttackConfig, cfg, overrides, "attack"))
    resolve_device(cfg.device)  # before a pool is pre-trained or a folder written
    cfg, out, _ = resolve(cfg)
    pool = ensure_pool(cfg, Path(cfg.pretrained))
    if cfg.init == "pretrained-random" and cfg.models > pool["heldout"]:
        print(
            f"attack: --models {cfg.models} but the pool holds {pool['heldout']} held-out networks; "
            f"reporting over those {pool['heldout']} (pre-train a pool with more held out for more)",
            file=sys.stderr,
        )
    started = time.perf_counter()
    data = distill_attack(cfg, out / f"distilled-{cfg.source_class}to{cfg.target_class}")
    distill_seconds = time.perf_counter() - started
    row = attack_report(data, models=cfg.models, data_dir=cfg.data_dir, device=cfg.device)
    row["seconds"] = round(distill_seconds, 1)
    rows = [row]
    if cfg.baselines:
        rows += run_baselines(data, cfg)
    result = {
        "config": {k: v for k, v in asdict(cfg).items() if k not in ATTACK_OUTPUTS},
        "pool": {
            "folder": cfg.pretrained,
            "train": pool["count"] - pool["heldout"],
            "heldout": pool["heldout"],
            "epochs": pool["recipe"]["epochs"],
            "test_accuracy": pool["accuracy"],
        },
        "rows": rows,
        "run_dir": str(out),
    }
    write_json(out / "attack.json", result)
    return result


def attack_table(result: dict[str, Any]) -> str:
    """A Markdown table of ``run_attack``'s rows (distilled attack first, then the baselines)."""
    rows = result["rows"]
    head = (
        "| method | lr | success K→T (%) | other classes before → after (%) | "
        "overall before → after (%) | nets |\n|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lr = ", ".join(f"{v:.3g}" for v in r["lrs"])
        lines.append(
            f"| {r['method']} | {lr} | {r['success_mean']:.1f} ± {r['success_std']:.1f} | "
            f"{r['other_before_mean']:.1f} → {r['other_after_mean']:.1f} ± {r['other_after_std']:.1f} | "
            f"{r['overall_before_mean']:.1f} → {r['overall_after_mean']:.1f} ± "
            f"{r['overall_after_std']:.1f} | {r['n_models']} |"
        )
    return "\n".join(lines)
