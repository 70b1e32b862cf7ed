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
    >>> from datadistill.attack import AttackConfig, attack_table, run_attack
    >>> result = run_attack(AttackConfig(dataset="mnist", model="lenet", pretrained="pools/mnist",
    ...                                  source_class=0, target_class=1))  # doctest: +SKIP
    >>> print(attack_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from datadistill.artifacts import DISTILLED_FILE, DistilledData, write_json
from datadistill.config import (
    ATTACK_OUTPUTS,
    AttackConfig,
    DistillConfig,
    PretrainConfig,
)
from datadistill.data import ImageDataset, load_dataset
from datadistill.inits import InitDistribution
from datadistill.setting import setting_from_manifest
from datadistill.unroll import Params, Steps, unroll

BASELINES = ("random K→T", "k-means K→T", "average K→T", "class T")
DISTILLED = "distilled"
# The metrics of one network, in percent; each is reported as <name>_mean / <name>_std over networks.
METRICS = (
    "success_before",
    "success",
    "other_before",
    "other_after",
    "overall_before",
    "overall_after",
)
# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------


def poison_metrics(
    predictions: Tensor, labels: Tensor, source_class: int, target_class: int
) -> dict[str, float]:
    """Attack metrics of one network from its predicted classes, in percent.

    Args:
        predictions: ``[N]`` predicted classes of the test images.
        labels: ``[N]`` true classes.
        source_class: K.
        target_class: T.

    Returns:
        ``success``: % of class-K images predicted T; ``other``: accuracy (%) on the images not of class K;
        ``overall``: accuracy (%) on all images (true labels, so class K counts as wrong when flipped).
    """
    is_source = labels == source_class
    if not bool(is_source.any()) or bool(is_source.all()):
        raise ValueError(
            f"the test set needs images of class {source_class} and of other classes to measure an "
            f"attack; it has {int(is_source.sum())} of {len(labels)} in class {source_class}"
        )
    correct = predictions == labels
    return {
        "success": 100.0 * float((predictions[is_source] == target_class).float().mean()),
        "other": 100.0 * float(correct[~is_source].float().mean()),
        "overall": 100.0 * float(correct.float().mean()),
    }


@torch.no_grad()
def predict(model: nn.Module, params: Params, images: Tensor, batch_size: int = 2000) -> Tensor:
    """``[N]`` predicted classes of ``images [N, C, H, W]`` by ``model`` with ``params``."""
    out = [
        functional_call(model, params, (images[i : i + batch_size],)).argmax(dim=1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def _network_metrics(
    model: nn.Module,
    params: Params,
    steps: Steps,
    test_x: Tensor,
    test_y: Tensor,
    source_class: int,
    target_class: int,
) -> dict[str, float]:
    """The ``METRICS`` of one network before and after replaying ``steps`` from ``params``."""
    before = poison_metrics(predict(model, params, test_x), test_y, source_class, target_class)
    final = unroll(model, params, steps, create_graph=False)[-1]
    if not all(bool(torch.isfinite(p).all()) for p in final.values()):
        # A diverged step: every prediction is meaningless, so nothing succeeds and nothing is right.
        after = {"success": 0.0, "other": 0.0, "overall": 0.0}
    else:
        after = poison_metrics(predict(model, final, test_x), test_y, source_class, target_class)
    return {
        "success_before": before["success"],
        "success": after["success"],
        "other_before": before["other"],
        "other_after": after["other"],
        "overall_before": before["overall"],
        "overall_after": after["overall"],
    }


def _summarise(per_network: Sequence[dict[str, float]]) -> dict[str, float]:
    """``<metric>_mean`` / ``<metric>_std`` (population std) over networks for every metric."""
    out: dict[str, float] = {}
    for name in METRICS:
        values = [m[name] for m in per_network]
        out[f"{name}_mean"] = statistics.fmean(values)
        out[f"{name}_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
    return out


def _evaluate_attack(
    model: nn.Module,
    steps: Steps,
    nets: Iterable[Params],
    test_x: Tensor,
    test_y: Tensor,
    source_class: int,
    target_class: int,
) -> dict[str, Any]:
    device = test_x.device
    steps = Steps(steps.images.to(device), steps.labels.to(device), steps.lrs.to(device))
    per_network = [
        _network_metrics(
            model,
            {k: v.to(device) for k, v in params.items()},
            steps,
            test_x,
            test_y,
            source_class,
            target_class,
        )
        for params in nets
    ]
    return {**_summarise(per_network), "n_models": len(per_network), "per_network": per_network}


def attack_report(
    data_or_run: DistilledData | str | Path,
    *,
    models: int = 20,
    data_dir: str | None = None,
    device: str = "cpu",
    on: str = "heldout",
) -> dict[str, Any]:
    """Measure a distilled attack on held-out pre-trained networks (the victims).

    Each victim θ_0 (the pool's held-out part for ``pretrained-random``; the one network for
    ``pretrained-fixed``) takes the distilled step(s) with the learned lr(s); its predictions on the real
    test set are compared before and after.

    Args:
        data_or_run: a ``DistilledData`` distilled with ``objective="poison"``, or its run folder.
        models: victims to report over (fixed inits: always the one network).
        data_dir: where the real data lives (default: the manifest's, else $DATADISTILL_DATA / cache).
        device: ``cpu`` or ``cuda``.
        on: ``"heldout"`` (the victims, the number to report) or ``"pool"``: the first ``models`` networks of
            the pool's training part, which the attack was distilled on; the gap between the two measures how
            much the attack over-fits the attacker's few networks.

    Returns:
        ``{"method": "distilled", "source_class", "target_class", "init", "n_models", "images", "lrs",
        "<metric>_mean", "<metric>_std" for every metric of METRICS, "per_network": [...]}``; all metrics are
        percentages in [0, 100].

    Raises:
        ValueError: the set was not distilled as an attack, or ``models`` is not positive.
    """
    data = (
        data_or_run if isinstance(data_or_run, DistilledData) else DistilledData.load(data_or_run)
    )
    manifest = data.manifest
    if manifest.get("objective") != "poison":
        raise ValueError(
            f"this distilled set was made with objective {manifest.get('objective')!r}, not 'poison': "
            "distil an attack first (`datadistill attack …` or distill --objective poison)"
        )
    if isinstance(models, bool) or not isinstance(models, int) or models < 1:
        raise ValueError(f"--models must be a positive integer, got {models!r}")
    if on not in ("heldout", "pool"):
        raise ValueError(f"on must be 'heldout' or 'pool', got {on!r}")
    source, target = int(manifest["source_class"]), int(manifest["target_class"])
    setting = setting_from_manifest(manifest, data_dir=data_dir)
    if on == "pool":
        nets: Iterable[Params] = setting.inits.pool[:models]
    else:
        available = setting.inits.max_evaluation_models()
        nets = setting.inits.evaluation_inits(
            min(models, available) if available is not None else models
        )
    test = setting.load("test")
    dev = torch.device(device)
    result = _evaluate_attack(
        setting.model,
        data.steps(),
        nets,
        test.images.to(dev),
        test.labels.to(dev),
        source,
        target,
    )
    return {
        "method": DISTILLED if on == "heldout" else f"{DISTILLED} (attacker's pool nets)",
        "source_class": source,
        "target_class": target,
        "init": setting.inits.kind,
        "images": int(data.images.shape[0] * data.images.shape[1]),
        "lrs": [round(float(v), 6) for v in data.lrs],
        **result,
    }


# ---------------------------------------------------------------------------------------------------------
# Baselines: real images, the same budget (one step, n images), one lr tuned on validation data
# ---------------------------------------------------------------------------------------------------------


def split_train(num_train: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint ``(fit, validation)`` indices of the training split; validation capped at a fifth."""
    v = max(1, min(val_size, num_train // 5))
    perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))
    return perm[v:].sort().values, perm[:v].sort().values


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
        from sklearn.cluster import KMeans  # slow to import; only this baseline needs it

        x = images[pool].reshape(len(pool), -1).double().numpy()  # [N_K, D]
        km = KMeans(n_clusters=n, init="k-means++", n_init=3, random_state=seed).fit(x)
        return torch.from_numpy(km.cluster_centers_).float().reshape(n, *images.shape[1:])
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
    scores = []
    for params in nets:
        before = poison_metrics(predict(model, params, val_x), val_y, source_class, target_class)
        final = unroll(model, params, steps, create_graph=False)[-1]
        if all(bool(torch.isfinite(p).all()) for p in final.values()):
            after = poison_metrics(predict(model, final, val_x), val_y, source_class, target_class)
        else:
            after = {"success": 0.0, "other": 0.0}
        scores.append((after["success"], before["other"], after["other"]))
    success, other_before, other_after = (statistics.fmean(v) for v in zip(*scores, strict=True))
    return success, other_before, other_after


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
    dev = torch.device(cfg.device)
    train, test = setting.load("train"), setting.load("test")
    fit, val = split_train(len(train), cfg.val_size, cfg.seed)
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
        result = _evaluate_attack(
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


# ---------------------------------------------------------------------------------------------------------
# The convenience entry: pool → distil → report (+ baselines, + heat-map)
# ---------------------------------------------------------------------------------------------------------


def ensure_pool(cfg: AttackConfig, folder: Path) -> dict[str, Any]:
    """The manifest of the pool in ``folder``, pre-training it first when the folder holds none."""
    from datadistill.pools import read_manifest
    from datadistill.pretrain import MANIFEST_FILE, pretrain

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
            model=cfg.model or _default_model(cfg.dataset),
            count=cfg.pool_count,
            heldout=cfg.pool_heldout,
            epochs=cfg.pool_epochs,
            out=str(folder),
            data_dir=cfg.data_dir,
            seed=cfg.seed,
            device=cfg.device,
            progress=cfg.progress,
        )
    )


def _default_model(dataset: str) -> str:
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
    return train.images[torch.cat(picks)][None]  # [1, n, C, H, W]


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
    train = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir)
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
        # Halve the Adam lr at every quarter of the run (distill's default, every tenth, stalls short runs).
        decay_every=max(iterations // 4, 1),
        init_noise=cfg.noise,
        source_weight=cfg.source_weight,
        # the same cap as the baselines' validation split: a fifth of the training images
        val_size=min(cfg.val_size, num_train // 5) if cfg.select else 0,
        # With selection, score 40 iterates; otherwise a curve point per quarter is enough.
        eval_every=max(iterations // (40 if cfg.select else 4), 1),
        checkpoint_every=max(iterations, 1),
        data_dir=cfg.data_dir,
        device=cfg.device,
        out=str(out),
    )


def _resolve(cfg: AttackConfig) -> tuple[AttackConfig, Path, ImageDataset]:
    """Validate ``cfg`` against the data set and fill the run and pool folders."""
    train = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir)
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
    cfg = AttackConfig(**{**(asdict(cfg) if cfg else {}), **overrides})
    cfg, out, _ = _resolve(cfg)
    pool = ensure_pool(cfg, Path(cfg.pretrained))
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


def attack_heatmap(
    cfg: AttackConfig,
    path: str | Path | None = None,
    *,
    iterations: int = 50,
    models: int = 5,
    classes: Sequence[int] | None = None,
) -> Tensor:
    """Success (%) of a small distilled attack for every pair (K, T), optionally drawn as a heat-map PNG.

    Each pair is distilled for ``iterations`` outer iterations into ``<out>/heatmap/KtoT`` (reused if there)
    and measured on ``models`` held-out networks.

    Args:
        cfg: the setting (data set, model, pool, budget); its ``source_class``/``target_class`` are ignored.
        path: where to write the PNG (None: no figure).
        iterations: outer iterations per pair (keep it small: C·(C−1) distillations).
        models: victims per pair.
        classes: the classes to pair (default all).

    Returns:
        ``[C, C]`` mean success, NaN on the diagonal (and for classes left out). The figure has a second
        panel, and ``<out>/heatmap.json`` a second matrix: the other classes' accuracy drop (points), without
        which a high success could hide a step that wrecks the network.
    """
    cfg, out, train = _resolve(cfg)
    ensure_pool(cfg, Path(cfg.pretrained))
    num = train.num_classes
    chosen = list(range(num)) if classes is None else list(classes)
    success = torch.full((num, num), math.nan)
    other_drop = torch.full((num, num), math.nan)
    for k in chosen:
        for t in chosen:
            if k == t:
                continue
            pair = replace(cfg, source_class=k, target_class=t, models=models)
            data = distill_attack(
                pair,
                out / "heatmap" / f"{k}to{t}",
                iterations=iterations,
                eval_models=1,
                progress=False,
            )
            row = attack_report(data, models=models, data_dir=cfg.data_dir, device=cfg.device)
            success[k, t] = row["success_mean"]
            other_drop[k, t] = row["other_before_mean"] - row["other_after_mean"]
            if cfg.progress:
                print(f"heat-map {k}→{t}: success {row['success_mean']:.1f}%", file=sys.stderr)

    def rows(m: Tensor) -> list[list[float | None]]:
        return [[None if math.isnan(v) else round(v, 3) for v in r] for r in m.tolist()]

    write_json(
        out / "heatmap.json",
        {"success": rows(success), "other_drop": rows(other_drop), "iterations": iterations},
    )
    if path is not None:
        title = _heatmap_title(cfg, iterations, models)
        save_heatmap(success, train.class_names, path, title=title, other_drop=other_drop)
    return success


def _heatmap_title(cfg: AttackConfig, iterations: int, models: int) -> str:
    return (
        f"{cfg.dataset} {cfg.model or _default_model(cfg.dataset)}, "
        f"{cfg.images_per_class}/class × 1 step, {iterations} it., {models} held-out nets"
    )


def save_heatmap(
    success: Tensor,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
    other_drop: Tensor | None = None,
) -> Path:
    """Draw ``success [C, C]`` (rows: source K, columns: target T) as an annotated PNG.

    With ``other_drop [C, C]`` (points of other-class accuracy lost), a second panel shows it beside.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num = success.shape[0]
    panels = [(success, "attack success (%)", 0.0, 100.0, "viridis")]
    if other_drop is not None:
        panels.append((other_drop, "other classes: accuracy drop (points)", 0.0, 20.0, "magma_r"))
    size = 1.0 + 0.6 * num
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), 0.8 + 0.55 * num))
    axes = np.atleast_1d(axes)
    names = [str(c)[:8] for c in class_names]
    for ax, (grid, label, vmin, vmax, cmap) in zip(axes, panels, strict=True):
        im = ax.imshow(np.ma.masked_invalid(grid.numpy()), vmin=vmin, vmax=vmax, cmap=cmap)
        for k in range(num):
            for t in range(num):
                v = float(grid[k, t])
                if not math.isnan(v):
                    dark = (v - vmin) / (vmax - vmin) < 0.6 if cmap == "viridis" else v > 10
                    ax.text(t, k, f"{v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")  # fmt: skip
        ax.set_xticks(range(num), names, rotation=90, fontsize=7)
        ax.set_yticks(range(num), names, fontsize=7)
        ax.set_xlabel("target class T")
        ax.set_ylabel("source class K")
        ax.set_title(label, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
