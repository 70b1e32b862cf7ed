"""Real-image baselines of the poisoning attack: the same budget (one step, n images), one tuned lr.

- ``random K→T``, ``k-means K→T``, ``average K→T``: real images of class K (random, per-class k-means
  centroids, the class mean) labelled T;
- ``class T``: random real images of class T with their own label T.

The lr of each baseline is the one of a grid with the highest success on a validation split of the *training*
data among the lrs that cost the other classes at most ``max_other_drop`` (5) points of validation accuracy
there: the baseline's best attack under the constraint the distilled attack is judged by, so a huge lr that
pushes every image to T (high "success", other classes destroyed) is not chosen. Ties go to the smaller lr.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from datadistill.artifacts import DistilledData
from datadistill.config import (
    AttackConfig,
)
from datadistill.distributed import resolve_device
from datadistill.experiments.attack_report import evaluate_attack, network_metrics
from datadistill.experiments.real_images import kmeans, split_train
from datadistill.inits import InitDistribution
from datadistill.setting import setting_from_manifest
from datadistill.unroll import Params, Steps

BASELINES = ("random K→T", "k-means K→T", "average K→T", "class T")


def baseline_images(
    kind: str,
    images: Tensor,
    labels: Tensor,
    source_class: int,
    target_class: int,
    n: int,
    seed: int = 0,
) -> Tensor:
    """``[n, C, H, W]`` real images for one baseline, all to be labelled T.

    Args:
        kind: one of ``BASELINES``.
        images: ``[N, C, H, W]`` training (fit) images to draw from; ``labels``: ``[N]``.
        source_class: K; target_class: T.
        n: images wanted (the distilled set's size).
        seed: seeds the random choice and k-means.
    """
    gen = torch.Generator().manual_seed(seed)
    cls = target_class if kind == "class T" else source_class
    pool = (labels == cls).nonzero().squeeze(1)
    if kind == "average K→T":
        return images[pool].mean(dim=0, keepdim=True).expand(n, *images.shape[1:]).clone()
    if len(pool) < n:
        raise ValueError(
            f"class {cls} has {len(pool)} training images but the budget needs {n}: lower "
            "--images-per-class"
        )
    if kind in ("random K→T", "class T"):
        return images[pool[torch.randperm(len(pool), generator=gen)[:n]]]
    if kind == "k-means K→T":
        return kmeans(images[pool], n, seed)
    raise ValueError(f"unknown baseline {kind!r}: choose one of {', '.join(BASELINES)}")


def _validation_scores(
    model: nn.Module,
    steps: Steps,
    nets: Sequence[Params],
    val_x: Tensor,
    val_y: Tensor,
    source_class: int,
    target_class: int,
) -> tuple[float, float, float]:
    """Mean ``(success, other before, other after)`` (%) on validation data over ``nets``.

    A diverged network (non-finite weights) scores 0 success and 0 other-class accuracy.
    """
    per_network = [
        network_metrics(model, params, steps, val_x, val_y, source_class, target_class)
        for params in nets
    ]
    return tuple(  # type: ignore[return-value]
        statistics.fmean(m[name] for m in per_network)
        for name in ("success", "other_before", "other_after")
    )


def tune_attack_lr(
    model: nn.Module,
    images: Tensor,
    nets: Sequence[Params],
    val_x: Tensor,
    val_y: Tensor,
    source_class: int,
    target_class: int,
    grid: Iterable[float],
    max_other_drop: float = 5.0,
) -> tuple[float, float]:
    """The lr of ``grid`` for one step on ``images`` (all labelled T) with the best validation success.

    Only lrs that cost the other classes at most ``max_other_drop`` points of validation accuracy are
    admissible; among them the highest success wins, ties going to the smaller lr. Only training-split data
    and pool (non-held-out) networks are used, never the test set or the victims.

    Returns:
        ``(lr, validation success %)``; the smallest lr of the grid if none is admissible.
    """
    x = images[None]  # [1, n, C, H, W]: one step
    y = torch.full((1, len(images)), target_class, dtype=torch.long, device=images.device)
    grid = sorted(grid)
    best_lr, best_success = grid[0], -1.0
    for lr in grid:
        steps = Steps(x, y, torch.tensor([lr], device=images.device))
        success, other_before, other_after = _validation_scores(
            model, steps, nets, val_x, val_y, source_class, target_class
        )
        if other_before - other_after <= max_other_drop and success > best_success:
            best_lr, best_success = lr, success
    return best_lr, max(best_success, 0.0)


def _tuning_nets(inits: InitDistribution, n: int, device: torch.device) -> list[Params]:
    """Pool networks of the *training* part (the attacker's), never the held-out victims."""
    count = 1 if inits.kind == "pretrained-fixed" else min(n, len(inits.pool))
    return [{k: v.to(device) for k, v in inits.pool[i].items()} for i in range(count)]


def run_baselines(
    data: DistilledData, cfg: AttackConfig, *, which: Sequence[str] = BASELINES
) -> list[dict[str, Any]]:
    """Rows for the real-image baselines with the budget of ``data`` (same images count, one step).

    Args:
        data: the distilled attack (sets the budget, the setting, K and T).
        cfg: seeds, validation size, lr grid, tuning nets and victims count.
        which: the baselines to run (names of ``BASELINES``).

    Returns:
        One dict per baseline, shaped like ``attack_report``'s (``method``, ``lrs``, ``val_success``, metrics).
    """
    manifest = data.manifest
    source, target = int(manifest["source_class"]), int(manifest["target_class"])
    setting = setting_from_manifest(manifest, data_dir=cfg.data_dir)
    model, inits = setting.model, setting.inits
    dev = resolve_device(cfg.device)
    setting.model.to(dev)  # a user network's constant buffers (parameters come from the inits)
    train, test = setting.load("train"), setting.load("test")
    fit, val = split_train(len(train), cfg.val_size, torch.Generator().manual_seed(cfg.seed))
    val_x, val_y = train.images[val].to(dev), train.labels[val].to(dev)
    nets = _tuning_nets(inits, cfg.tune_models, dev)
    available = inits.max_evaluation_models()
    n_victims = min(cfg.models, available) if available is not None else cfg.models
    test_x, test_y = test.images.to(dev), test.labels.to(dev)
    n = int(data.images.shape[0] * data.images.shape[1])  # the distilled budget
    rows = []
    for kind in which:
        started = time.perf_counter()
        x = baseline_images(
            kind, train.images[fit], train.labels[fit], source, target, n, cfg.seed
        ).to(dev)
        lr, score = tune_attack_lr(
            model, x, nets, val_x, val_y, source, target, cfg.lr_grid, cfg.max_other_drop
        )
        steps = Steps(
            x[None],
            torch.full((1, n), target, dtype=torch.long, device=dev),
            torch.tensor([lr], device=dev),
        )
        result = evaluate_attack(
            model, steps, inits.evaluation_inits(n_victims), test_x, test_y, source, target
        )
        rows.append(
            {
                "method": kind,
                "source_class": source,
                "target_class": target,
                "init": inits.kind,
                "images": n,
                "lrs": [lr],
                "val_success": round(score, 4),
                "seconds": round(time.perf_counter() - started, 1),
                **result,
            }
        )
    return rows
