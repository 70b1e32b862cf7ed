"""Baselines for distilled data: what the same budget of real images achieves (Wang et al. 2018, §4.1, Table 1).

For a budget of ``steps`` (S) GD steps × ``images_per_class`` (K) images of each class per step, replayed for
``epochs`` (E) epochs, the image baselines are

- ``random-real``: S·K random real training images of each class;
- ``optimized-real``: the best of many random sets, scored on a validation split of the *training* data;
- ``kmeans``: per-class k-means++ centroids (S·K per class) of the training images;
- ``average-real``: the mean image of each class, at every position of every step;

each trained with the paper's replay protocol (``evaluate_steps``: the S steps in order, E epochs, from
evaluation inits) with (a) one fixed lr tuned on the validation split, and (b) per-update lrs learned by
distillation while the images stay fixed (``distill(learn="lrs")``). Besides, ``knn-random`` and ``knn-kmeans``
are 1-nearest-neighbour classifiers on the random-real and k-means images, and ``full-data`` is the network
trained normally (minibatch Adam) on the whole training set.

The training split is cut once into a *fit* part (where the baseline images come from, and the meta-loss data
of learned lrs) and a *validation* part (lr tuning, scoring optimised sets). The test set is only ever used for
the reported accuracies.

Example:
    >>> from datadistill.config import BaselinesConfig
    >>> from datadistill.experiments.baselines import run_baselines
    >>> report = run_baselines(BaselinesConfig(dataset="digits", model="mlp"))  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from datadistill.artifacts import write_json
from datadistill.config import EVAL_NETWORKS, BaselinesConfig, DistillConfig, with_overrides
from datadistill.data import ImageDataset, load_dataset
from datadistill.distributed import resolve_device
from datadistill.evaluate import accuracy, evaluate_steps, replay_finite
from datadistill.experiments import real_images
from datadistill.experiments.real_images import (
    arrange,
    average_real,
    kmeans_centroids,
    nearest_neighbour_accuracy,
    random_real,
)
from datadistill.inits import InitDistribution
from datadistill.setting import Setting, make_setting
from datadistill.train import train_adam
from datadistill.unroll import Params, Steps

TUNED = "tuned lr"  # BaselineRow.lrs of an image baseline replayed with one tuned step size
LEARNED = "learned lrs"  # … replayed with per-update lrs learned by distillation (images fixed)
# Distinct seed streams, so that e.g. the validation split never moves when the number of candidates changes.
_SPLIT, _RANDOM, _CANDIDATES, _TUNE, _FULL = range(5)


@dataclass
class BaselineRow:
    """One baseline's test accuracy (%) over ``n_models`` networks."""

    baseline: str  # one of BASELINES
    lrs: str  # TUNED, LEARNED, "1-NN" or "Adam, full training set"
    accuracy_mean: float
    accuracy_std: float
    n_models: int
    lr: float | None = None  # the tuned fixed lr (TUNED rows)
    lr_range: tuple[float, float] | None = None  # min/max of the learned lrs (LEARNED rows)
    val_accuracy: float | None = None  # mean validation accuracy of the chosen lr / set
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BaselineReport:
    """All rows of one ``run_baselines`` call and the settings that produced them."""

    rows: list[BaselineRow]
    config: dict[str, Any]
    protocol: str  # how the image baselines were trained and tested, in words

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "protocol": self.protocol,
            "rows": [r.to_dict() for r in self.rows],
        }

    def table(self) -> str:
        """The rows as a Markdown table (accuracy as mean ± std over networks)."""
        lines = [
            "| baseline | step sizes | test accuracy (%) | networks | lr |",
            "|---|---|---|---|---|",
        ]
        for r in self.rows:
            if r.lr is not None:
                lr = f"{r.lr:.3g}"
            elif r.lr_range is not None:
                lr = f"{r.lr_range[0]:.3g}–{r.lr_range[1]:.3g}"
            else:
                lr = ""
            lines.append(
                f"| {r.baseline} | {r.lrs} | {r.accuracy_mean:.2f} ± {r.accuracy_std:.2f} | "
                f"{r.n_models} | {lr} |"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Splits and image sets
# ---------------------------------------------------------------------------------------------------------


def _gen(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 7919 + stream)


def split_train(num_train: int, val_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(fit, val)`` indices of the training split (``real_images.split_train``), seeded for the baselines."""
    return real_images.split_train(num_train, val_size, _gen(seed, _SPLIT))


# ---------------------------------------------------------------------------------------------------------
# Training: replay with a tuned lr, replay with learned lrs, full data
# ---------------------------------------------------------------------------------------------------------


def _tuning_inits(inits: InitDistribution, n: int, seed: int) -> list[Params]:
    """θ_0 for tuning. Random kinds draw from the *distillation* stream, never the held-out evaluation inits."""
    if inits.is_fixed:
        return [inits.sample(torch.Generator())]
    return [inits.sample(_gen(seed, _TUNE * 1000 + i)) for i in range(n)]


def replay_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    lr: float,
    epochs: int,
    inits: Sequence[Params],
    val_images: Tensor,
    val_labels: Tensor,
) -> float:
    """Mean accuracy (%) on ``val_images`` after replaying ``images [S, n, C, H, W]`` with one fixed lr.

    A diverged network (non-finite weights) counts as chance-or-worse through its accuracy, not as an error:
    large lrs in the grid are expected to diverge.
    """
    device = val_images.device
    steps = Steps(images, labels, torch.full((images.shape[0] * epochs,), lr, device=device))
    accs = []
    for params in inits:
        params = {k: v.to(device) for k, v in params.items()}
        final = replay_finite(model, params, steps)
        accs.append(accuracy(model, final, val_images, val_labels) if final is not None else 0.0)
    return statistics.fmean(accs)


def tune_lr(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epochs: int,
    inits: Sequence[Params],
    val_images: Tensor,
    val_labels: Tensor,
    grid: Iterable[float],
) -> tuple[float, float]:
    """The fixed lr of ``grid`` with the best mean validation accuracy when replaying ``images``.

    Only ever given validation data (carved from the training split), never the test set.

    Returns:
        ``(lr, validation accuracy %)``; ties go to the smaller lr (the grid is scanned in increasing order).
    """
    best_lr, best_acc = math.nan, -1.0
    for lr in sorted(grid):
        acc = replay_accuracy(model, images, labels, lr, epochs, inits, val_images, val_labels)
        if acc > best_acc:
            best_lr, best_acc = lr, acc
    return best_lr, best_acc


def learn_lrs(
    cfg: BaselinesConfig,
    images: Tensor,
    lr_init: float,
    data: dict[str, Any] | None = None,
    model: Any = None,
) -> Tensor:
    """Per-update lrs ``[S·E]`` learned by distillation with ``images [S, n, C, H, W]`` kept fixed.

    ``distill(learn="lrs")`` draws its meta-loss batches from the whole training split (``distill`` takes no
    subset), validation part included, and never from the test set. Starts from the tuned fixed lr, so the
    learned schedule begins where the tuned baseline is.
    """
    from datadistill.distill import distill

    # data from Python (run_baselines(train=..., test=...)) and a network object go to distill as they came
    python = {**(data or {}), **({"model": model} if model is not None else {})}
    source = {} if data else {"dataset": cfg.dataset, "test_fraction": cfg.test_fraction}
    with tempfile.TemporaryDirectory(prefix="datadistill-baseline-lrs-") as tmp:
        settings = DistillConfig(
            **source,
            model=cfg.model,
            init=cfg.init,
            init_scheme=cfg.init_scheme,
            steps=cfg.steps,
            epochs=cfg.epochs,
            images_per_class=cfg.images_per_class,
            learn="lrs",
            lr_init=lr_init,
            lr=cfg.lrs_lr,
            batch_size=cfg.lrs_batch_size,
            schedule="step",
            decay_every=max(1, cfg.lrs_iterations // 2),
            iterations=cfg.lrs_iterations,
            inits_per_iteration=cfg.lrs_inits_per_iteration,
            eval_models=1,  # its own evaluation is discarded; ours below uses the full protocol
            eval_every=cfg.lrs_iterations,
            checkpoint_every=cfg.lrs_iterations,
            seed=cfg.seed,
            data_dir=cfg.data_dir,
            device=cfg.device,
            out=tmp,
        )
        data = distill(settings, images=images.cpu(), progress=False, **python)
    return data.lrs


# ---------------------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What every baseline of one run shares."""

    cfg: BaselinesConfig
    setting: Setting
    train: ImageDataset
    fit: Tensor  # [N_fit] indices into the training split: where baseline images come from
    val: Tensor  # [N_val] indices into the training split: lr tuning and set selection only
    test_x: Tensor
    test_y: Tensor
    n_models: int
    device: torch.device
    python_data: dict[str, Any] | None = None  # train=/test= given in Python, for learned lrs

    @property
    def model(self) -> nn.Module:
        return self.setting.model

    def fit_data(self) -> tuple[Tensor, Tensor]:
        return self.train.images[self.fit], self.train.labels[self.fit]

    def val_data(self) -> tuple[Tensor, Tensor]:
        return self.train.images[self.val].to(self.device), self.train.labels[self.val].to(
            self.device
        )


def _image_rows(
    ctx: _Context, name: str, per_class: Tensor, tuned: tuple[float, float] | None = None
) -> list[BaselineRow]:
    """Evaluate one image baseline with a tuned fixed lr and (optionally) learned lrs."""
    cfg = ctx.cfg
    images, labels = arrange(per_class, cfg.steps, cfg.images_per_class)
    images, labels = images.to(ctx.device), labels.to(ctx.device)
    val_x, val_y = ctx.val_data()
    started = time.perf_counter()
    if tuned is None:
        tune_inits = _tuning_inits(ctx.setting.inits, cfg.tune_models, cfg.seed)
        tuned = tune_lr(
            ctx.model, images, labels, cfg.epochs, tune_inits, val_x, val_y, cfg.lr_grid
        )
    lr, val_acc = tuned
    rows = []
    lrs = torch.full((cfg.steps * cfg.epochs,), lr, device=ctx.device)
    after, _ = evaluate_steps(
        ctx.model,
        Steps(images, labels, lrs),
        ctx.setting.inits,
        ctx.test_x,
        ctx.test_y,
        ctx.n_models,
    )
    rows.append(_row(name, TUNED, after, started, lr=lr, val_accuracy=val_acc))
    if cfg.learn_lrs:
        started = time.perf_counter()
        # a network object goes on as the object; names and module:factory specs as given
        net = None if isinstance(cfg.model, str | None) else ctx.setting.model
        learned = learn_lrs(cfg, images, lr, ctx.python_data, net).to(ctx.device)
        after, _ = evaluate_steps(
            ctx.model,
            Steps(images, labels, learned),
            ctx.setting.inits,
            ctx.test_x,
            ctx.test_y,
            ctx.n_models,
        )
        span = (float(learned.min()), float(learned.max()))
        rows.append(_row(name, LEARNED, after, started, lr_range=span))
    return rows


def _row(name: str, lrs: str, after: list[float], started: float, **kwargs) -> BaselineRow:
    return BaselineRow(
        baseline=name,
        lrs=lrs,
        accuracy_mean=statistics.fmean(after),
        accuracy_std=statistics.pstdev(after) if len(after) > 1 else 0.0,
        n_models=len(after),
        accuracies=list(after),
        seconds=round(time.perf_counter() - started, 1),
        **kwargs,
    )


def _optimized_real(ctx: _Context) -> tuple[Tensor, tuple[float, float]]:
    """The best of ``cfg.candidates`` random real sets by validation accuracy, and its tuned lr.

    Candidates are scored with the lr tuned for the first candidate (tuning every candidate would multiply
    the cost by the grid size); the winner's lr is then tuned again on its own.
    """
    cfg = ctx.cfg
    x, y = ctx.fit_data()
    val_x, val_y = ctx.val_data()
    tune_inits = _tuning_inits(ctx.setting.inits, cfg.tune_models, cfg.seed)
    gen = _gen(cfg.seed, _CANDIDATES)
    k = ctx.train.num_classes
    best, best_acc, lr = None, -1.0, None
    for _ in range(cfg.candidates):
        per_class = random_real(x, y, k, cfg.steps, cfg.images_per_class, gen)
        images, labels = arrange(per_class, cfg.steps, cfg.images_per_class)
        images, labels = images.to(ctx.device), labels.to(ctx.device)
        if lr is None:
            lr, _ = tune_lr(
                ctx.model, images, labels, cfg.epochs, tune_inits, val_x, val_y, cfg.lr_grid
            )
        acc = replay_accuracy(ctx.model, images, labels, lr, cfg.epochs, tune_inits, val_x, val_y)
        if acc > best_acc:
            best, best_acc = (per_class, images, labels), acc
    per_class, images, labels = best
    tuned = tune_lr(ctx.model, images, labels, cfg.epochs, tune_inits, val_x, val_y, cfg.lr_grid)
    return per_class, tuned


def _full_data_row(ctx: _Context) -> BaselineRow:
    cfg = ctx.cfg
    started = time.perf_counter()
    train_x = ctx.train.images.to(ctx.device)  # the whole training split, as "full data" means
    train_y = ctx.train.labels.to(ctx.device)
    # One network: full training varies little across inits and costs orders of magnitude more than replay.
    params = next(ctx.setting.inits.evaluation_inits(1))
    params = {k: v.to(ctx.device) for k, v in params.items()}
    trained = train_adam(
        ctx.model,
        params,
        train_x,
        train_y,
        epochs=cfg.full_epochs,
        batch_size=cfg.full_batch_size,
        lr=cfg.full_lr,
        generator=_gen(cfg.seed, _FULL),
    )
    acc = accuracy(ctx.model, trained, ctx.test_x, ctx.test_y)
    return _row("full-data", f"Adam, {cfg.full_epochs} epochs", [acc], started)


def _knn_row(ctx: _Context, name: str, per_class: Tensor) -> BaselineRow:
    started = time.perf_counter()
    ref = per_class.reshape(-1, *per_class.shape[2:]).to(ctx.device)  # [K_cls·S·K, C, H, W]
    ref_y = torch.arange(per_class.shape[0]).repeat_interleave(per_class.shape[1]).to(ctx.device)
    acc = nearest_neighbour_accuracy(ref, ref_y, ctx.test_x, ctx.test_y)
    return _row(name, "1-NN", [acc], started)


def _setup(
    cfg: BaselinesConfig | None, overrides: dict[str, Any], train: Any, test: Any
) -> _Context:
    """The validated settings, the data (from ``cfg.dataset`` or Python), the network and the splits."""
    values = with_overrides(BaselinesConfig, cfg, overrides, "baselines")
    python_data = None
    if train is not None:
        from datadistill.data.sources import from_python

        values["dataset"] = "python"
        python_data = {"train": train, "test": test, "test_fraction": values.get("test_fraction")}
        train, test = from_python(train, test, test_fraction=values.get("test_fraction"))
    cfg = BaselinesConfig(**values).validate()
    device = resolve_device(cfg.device)
    if python_data is None:
        load = dict(
            data_dir=cfg.data_dir,
            test_fraction=cfg.test_fraction,
            resize=cfg.resize,
            pad=cfg.pad,
            channels=cfg.channels,
        )
        train = load_dataset(cfg.dataset, "train", **load)
        test = load_dataset(cfg.dataset, "test", **load)
    setting = make_setting(
        dataset=cfg.dataset,
        model=cfg.model,
        init=cfg.init,
        init_scheme=cfg.init_scheme,
        seed=cfg.seed,
        data_dir=cfg.data_dir,
        resize=cfg.resize,
        pad=cfg.pad,
        channels=cfg.channels,
        image_shape=train.image_shape,
        num_classes=train.num_classes,
        source=train.source,
        test_fraction=cfg.test_fraction,
    )
    setting.model.to(device)
    fit, val = split_train(len(train.labels), cfg.val_size, cfg.seed)
    n_models = 1 if setting.inits.is_fixed else (cfg.models or EVAL_NETWORKS["baselines"])
    return _Context(
        cfg,
        setting,
        train,
        fit,
        val,
        test.images.to(device),
        test.labels.to(device),
        n_models,
        device,
        python_data,
    )


def _measure(ctx: _Context, progress: bool) -> list[BaselineRow]:
    """The rows of the baselines in ``cfg.only``, in the order of ``BASELINES``."""
    cfg = ctx.cfg
    x, y = ctx.fit_data()
    k = ctx.train.num_classes
    rows: list[BaselineRow] = []

    def add(new: list[BaselineRow]) -> None:
        rows.extend(new)
        if progress:
            for r in new:
                print(
                    f"[baselines] {r.baseline} ({r.lrs}): {r.accuracy_mean:.2f} ± {r.accuracy_std:.2f} "
                    f"over {r.n_models} ({r.seconds:.0f} s)",
                    file=sys.stderr,
                )

    wanted = set(cfg.only)
    rand = kmeans = None
    if wanted & {"random-real", "knn-random"}:
        rand = random_real(x, y, k, cfg.steps, cfg.images_per_class, _gen(cfg.seed, _RANDOM))
    if wanted & {"kmeans", "knn-kmeans"}:
        kmeans = kmeans_centroids(x, y, k, cfg.steps, cfg.images_per_class, cfg.seed)
    if "random-real" in wanted:
        add(_image_rows(ctx, "random-real", rand))
    if "optimized-real" in wanted:
        per_class, tuned = _optimized_real(ctx)
        add(_image_rows(ctx, "optimized-real", per_class, tuned))
    if "kmeans" in wanted:
        add(_image_rows(ctx, "kmeans", kmeans))
    if "average-real" in wanted:
        add(
            _image_rows(ctx, "average-real", average_real(x, y, k, cfg.steps, cfg.images_per_class))
        )
    if "knn-random" in wanted:
        add([_knn_row(ctx, "knn-random", rand)])
    if "knn-kmeans" in wanted:
        add([_knn_row(ctx, "knn-kmeans", kmeans)])
    if "full-data" in wanted:
        add([_full_data_row(ctx)])
    return rows


def run_baselines(
    cfg: BaselinesConfig | None = None,
    *,
    progress: bool = True,
    train: Any = None,
    test: Any = None,
    **overrides: Any,
) -> BaselineReport:
    """Measure the baselines of ``cfg.only`` for one budget and init kind.

    Args:
        cfg: the settings (see ``BaselinesConfig``); keyword ``overrides`` replace individual fields.
        progress: print one line per finished row to stderr.
        train, test: data from Python instead of ``cfg.dataset``, as in :func:`datadistill.distill`.

    Returns:
        a ``BaselineReport`` (also written to ``cfg.json`` when set).
    """
    ctx = _setup(cfg, overrides, train, test)
    cfg, setting, n_models = ctx.cfg, ctx.setting, ctx.n_models
    rows = _measure(ctx, progress)
    protocol = (
        f"replay: {cfg.steps} steps x {cfg.images_per_class} image(s) per class, {cfg.epochs} epochs, "
        f"from {n_models} {'fixed' if setting.inits.is_fixed else 'held-out random'} init(s); "
        f"lr tuned on {len(ctx.val)} validation images carved from the training split; "
        f"accuracy on the {len(ctx.test_y)} test images"
    )
    report = BaselineReport(
        rows, {**vars(cfg), "model": setting.model_spec, "data_source": ctx.train.source}, protocol
    )
    if cfg.json:
        write_json(Path(cfg.json), report.to_dict())
    return report
