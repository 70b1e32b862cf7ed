"""The settings of every command but ``distill``: evaluate, baselines, attack, pretrain, linear."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datadistill.config.settings import (
    AUGMENTATIONS,
    EVAL_NETWORKS,
    PROTOCOLS,
    _setting,
    check_data_options,
    check_device,
    check_fields,
    check_init_noise,
    check_seed,
    check_source_weight,
    comma_separated,
    flag,
    positive_int,
    positive_number,
)


@dataclass
class EvaluateConfig:
    """Everything ``datadistill evaluate`` needs: the run folder and how to train fresh networks on it."""

    run: str | None = _setting(
        None,
        "a run folder (distilled.safetensors + manifest.json), or a name from `datadistill gallery`",
        positional=True,
        metavar="RUN_DIR",
    )
    models: int | None = _setting(
        None,
        f"networks to train (default: replay, 1 fixed init or {EVAL_NETWORKS['evaluate']} random; "
        f"dataset protocol, {EVAL_NETWORKS['dataset']} fresh networks, or an adaptation set's "
        "pre-trained ones as replay)",
    )
    json: str | None = _setting(None, "also write the result as JSON to this file")
    data_dir: str | None = _setting(
        None,
        "real data folder (default: $DATADISTILL_DATA, else the cache); for a run on your own "
        "data that has moved: the folder now holding it (found by its file or folder name)",
    )
    device: str = _setting("cpu", "cpu | cuda")
    protocol: str | None = _setting(
        None,
        "replay: the distilled steps in order with their learned lrs (the paper's protocol), or for a set "
        "distilled for the dataset protocol the inner training it was distilled with (its manifest's recipe); "
        "dataset: train fresh networks on the images as an ordinary training set with the field's "
        "recipe (SGD m0.9, wd 5e-4, lr 0.01 /10 at half-way, batch 256, --epochs). Default: the "
        "protocol the set was distilled for (its manifest)",
        choices=PROTOCOLS,
    )
    model: str | None = _setting(
        None,
        "dataset protocol: the network to train (registered name or module:factory; default "
        "convnet, ConvNet-3 with 128 channels; adaptation sets default to their pre-trained networks)",
    )
    epochs: int | None = _setting(
        None,
        "dataset protocol: epochs of the field's recipe (default 300; DC's and DSA's own numbers "
        "with augmentation trained 1000)",
    )
    augment: str = _setting(
        "none",
        "dataset protocol: augmentation of every minibatch: dsa (DSA's families) or dc (DC's MNIST "
        "crop/scale/rotate); default none",
        choices=AUGMENTATIONS,
    )
    jobs: int = _setting(
        1,
        "dataset protocol: networks trained at once, each in its own CPU process (pays for ConvNet-3 and "
        "ResNet-18, not LeNet or the MLP); default 1",
    )

    def validate(self) -> EvaluateConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values."""
        check_fields(self)
        if self.run is None:
            raise ValueError("evaluate needs the run folder to evaluate (RUN_DIR)")
        check_device(self.device)
        return self  # --models and --epochs are checked where they are used (evaluate.py)


IMAGE_BASELINES = ("random-real", "optimized-real", "kmeans", "average-real")
KNN_BASELINES = ("knn-random", "knn-kmeans")
BASELINES = (*IMAGE_BASELINES, *KNN_BASELINES, "full-data")


@dataclass
class BaselinesConfig:
    """Settings of ``datadistill baselines``: the budget, the protocol and how hard to tune."""

    dataset: str = _setting(
        "digits",
        "data set name, or a path: image folder, .npz, .pt, .safetensors (default: digits)",
    )
    model: str | None = _setting(
        None, "network: registered name or module:factory (default: the data set's default)"
    )
    test_fraction: float | None = _setting(
        None, "your data without a test split: share of each class held out (default 0.2)"
    )
    resize: int | None = _setting(None, "resize images to NxN (e.g. 28 for USPS)")
    pad: int | None = _setting(
        None, "then pad each side with N background pixels (USPS: --resize 20 --pad 4)"
    )
    channels: int | None = _setting(None, "convert images to this many channels (1 or 3)")
    init: str = _setting("fixed", "default: fixed", choices=("fixed", "random"))
    init_scheme: str = _setting("xavier", "weight init of fixed/random inits", hidden=True)
    steps: int = _setting(10, "GD steps S (default: 10)")
    epochs: int = _setting(3, "epochs E over the steps (default: 3)")
    images_per_class: int = _setting(1, "K per step (default: 1)")
    models: int | None = _setting(None, "networks (default: 1 fixed init, 20 held-out random)")
    only: tuple[str, ...] = _setting(
        BASELINES, f"comma-separated subset of {','.join(BASELINES)} (default: all)"
    )
    learn_lrs: bool = _setting(
        True, "also learn per-update lrs for each image baseline, images fixed (default: on)"
    )
    lrs_iterations: int = _setting(200, "outer iterations of learned lrs")
    candidates: int = _setting(20, "random sets scored for optimized-real")
    full_epochs: int = _setting(2, "full-data: epochs of Adam")
    seed: int = _setting(0, "")  # seeds the fixed init, the splits, the image choices and k-means
    json: str | None = _setting(None, "also write the report as JSON to this file")
    data_dir: str | None = _setting(None, "default: $DATADISTILL_DATA, else the cache")
    device: str = _setting("cpu", "cpu | cuda")
    val_size: int = _setting(
        5000, "validation images carved from the training split (at most 1/5 of it)", hidden=True
    )
    lr_grid: tuple[float, ...] = _setting(
        tuple(float(v) for v in np.logspace(-3, 0, 10)), "fixed lrs to try", hidden=True
    )
    tune_models: int = _setting(
        3, "inits per lr (and per optimised-real candidate) on the validation split", hidden=True
    )
    lrs_inits_per_iteration: int | None = _setting(
        None, "None: 1 for fixed, 4 for random (as distill)", hidden=True
    )
    lrs_lr: float = _setting(0.03, "Adam lr on the raw step sizes", hidden=True)
    lrs_batch_size: int = _setting(
        1024, "real training images per meta-loss of learned lrs", hidden=True
    )
    full_batch_size: int = _setting(128, "full-data: minibatch size", hidden=True)
    full_lr: float = _setting(1e-3, "full-data: Adam lr, cosine-decayed to 0", hidden=True)

    def validate(self) -> BaselinesConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values."""
        check_fields(self)
        check_data_options(self)
        check_device(self.device)
        check_seed(self.seed)
        for name in (
            "steps",
            "epochs",
            "images_per_class",
            "val_size",
            "tune_models",
            "candidates",
            "lrs_iterations",
            "lrs_batch_size",
            "full_epochs",
            "full_batch_size",
        ):
            positive_int(name, getattr(self, name))
        if self.models is not None and self.models < 1:
            raise ValueError(f"--models must be a positive integer, got {self.models!r}")
        if self.init not in ("fixed", "random"):
            raise ValueError(f"--init must be 'fixed' or 'random' for baselines, got {self.init!r}")
        if isinstance(self.only, str):  # Python callers may write it as on the command line
            self.only = comma_separated(self.only)
        self.only = tuple(self.only)
        unknown = [b for b in self.only if b not in BASELINES]
        if unknown or not self.only:
            raise ValueError(
                f"--only {','.join(self.only)!r}: unknown baseline(s) {unknown}; "
                f"choose from {', '.join(BASELINES)}"
            )
        if not self.lr_grid or not all(v > 0 for v in self.lr_grid):
            raise ValueError(f"lr_grid must be positive step sizes, got {self.lr_grid!r}")
        return self


ATTACK_INITS = ("pretrained-random", "pretrained-fixed")
START_IMAGES = ("poison", "real")
# 1e-4 … 10, 4 per decade. Pre-trained LeNets flip a whole class at lr 0.01 on 100 relabelled images, so the
# grid reaches well below that.
DEFAULT_LR_GRID = tuple(float(v) for v in np.logspace(-4, 1, 21))
# --init-noise for unknown victims (pretrained-random): measured on MNIST, 60 + 10 LeNets (docs/RESULTS.md)
RANDOM_POOL_NOISE = 0.3
# AttackConfig fields that say what the command line does with the result, not how the attack is made
# (left out of the result's recorded config).
ATTACK_OUTPUTS = ("progress", "json", "heatmap", "heatmap_iterations")


@dataclass
class AttackConfig:
    """Settings of ``datadistill attack``: the victim, the pair (K, T), the budget and the baselines.

    ``source_weight``: 1 is the paper's plain mean over the real batch; 10 trades a few points of the other
    classes for success (docs/RESULTS.md, issue 6). ``init_noise`` None is 0.3 for pretrained-random, where
    without it the step fits the pool's few nets and not the victims, and 0 for pretrained-fixed, where the
    victim is the one net distilled on. ``select`` keeps the iterate best on ``val_size`` held-out images
    and 4 pool nets held back from distillation.
    """

    dataset: str = _setting("mnist", "data set (default mnist)")
    resize: int | None = _setting(None, "resize images to NxN (e.g. 28 for USPS)")
    pad: int | None = _setting(
        None, "then pad each side with N background pixels (USPS: --resize 20 --pad 4)"
    )
    channels: int | None = _setting(None, "convert images to this many channels (1 or 3)")
    test_fraction: float | None = _setting(
        None, "your data without a test split: share of each class held out (default 0.2)"
    )
    model: str | None = _setting(
        None, "registered model or module:factory (default: the data set's, lenet for MNIST)"
    )
    pretrained: str | None = _setting(
        None,
        "pool folder (`datadistill pretrain --out`); pre-trained here first if it holds none",
        required=True,
    )
    source_class: int = _setting(0, "K: class to misclassify", required=True)
    target_class: int = _setting(1, "T: class to predict for K", required=True)
    init: str = _setting("pretrained-random", "(default pretrained-random)", choices=ATTACK_INITS)
    images_per_class: int = _setting(10, "distilled images per class in the step (default 10)")
    iterations: int = _setting(1500, "outer iterations")
    start: str = _setting(
        "poison",
        "starting pixels: poison (class-T slots start as class-K images; default) | real",
        choices=START_IMAGES,
    )
    inits_per_iteration: int | None = _setting(None, "pool networks per iteration (4)")
    lr: float = _setting(0.03, "Adam lr on pixels and step size")
    # one step of 0.1 on a few K→T images wrecks a LeNet
    lr_init: float = _setting(0.03, "starting step size")
    batch_size: int = _setting(1024, "real images per meta-loss")
    source_weight: float = _setting(
        10.0,
        "weight of class-K images in the objective, relative to the others (default 10; 1 is the "
        "paper's plain mean over the real batch; larger favours success over sparing the other "
        "classes)",
    )
    init_noise: float | None = _setting(
        None,
        "distil for pool nets perturbed by N(0, (σ·rms)²) per tensor, so the step does not fit the "
        f"pool's few training nets (default {RANDOM_POOL_NOISE:g} for pretrained-random, 0 for "
        "pretrained-fixed; 0 is the paper)",
    )
    select: bool = _setting(
        False,
        "result = the iterate best on --val-size held-out training images (K relabelled T) "
        "replayed from 4 pool nets held back from distillation (default off: the last iterate)",
    )
    models: int = _setting(EVAL_NETWORKS["attack"], "held-out victims to report over (10)")
    baselines: bool = _setting(True, "also run the real-image baselines (default on)")
    val_size: int = _setting(5000, "validation images for lr")
    tune_models: int = _setting(
        3, "pool networks (training part, never held-out) per lr when tuning", hidden=True
    )
    lr_grid: tuple[float, ...] = _setting(
        DEFAULT_LR_GRID, "step sizes tried for the baselines", hidden=True
    )
    max_other_drop: float = _setting(
        5.0,
        "baselines' lr: other-class validation accuracy may drop this much",
        hidden=True,
    )
    pool_count: int = _setting(70, "networks if pre-training")
    pool_heldout: int = _setting(10, "… held out of them")
    pool_epochs: int = _setting(1, "… epochs each")
    seed: int = _setting(
        0, ""
    )  # seeds the distillation, the validation split and the baseline images
    out: str | None = _setting(None, "folder for the distilled run and attack.json")
    json: str | None = _setting(None, "also write the report here")
    heatmap: str | None = _setting(None, "also distil every pair (K, T) briefly and draw this PNG")
    heatmap_iterations: int = _setting(50, "iterations per heat-map pair")
    data_dir: str | None = _setting(
        None, "real data folder (default: $DATADISTILL_DATA, else cache)"
    )
    device: str = _setting("cpu", "cpu | cuda")
    progress: bool = _setting(True, "progress bars", hidden=True)

    @property
    def noise(self) -> float:
        """``init_noise``, with None resolved for the init kind (0.3 for pretrained-random, else 0)."""
        if self.init_noise is not None:
            return float(self.init_noise)
        return RANDOM_POOL_NOISE if self.init == "pretrained-random" else 0.0

    def validate(self, num_classes: int | None = None) -> AttackConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values.

        Args:
            num_classes: classes of the data set, to check K and T against (skipped when None).
        """
        check_fields(self)
        check_pair(self.source_class, self.target_class, num_classes, self.dataset)
        check_data_options(self)
        check_device(self.device)
        check_seed(self.seed)
        if self.init not in ATTACK_INITS:
            raise ValueError(
                f"--init {self.init!r}: the attack targets pre-trained networks; choose one of "
                f"{', '.join(ATTACK_INITS)}"
            )
        for name in (
            "images_per_class",
            "iterations",
            "batch_size",
            "models",
            "val_size",
            "tune_models",
            "pool_count",
            "pool_epochs",
        ):
            positive_int(name, getattr(self, name))
        if not 0 < self.pool_heldout < self.pool_count:
            raise ValueError(
                f"--pool-heldout must be in (0, --pool-count), got {self.pool_heldout} of "
                f"{self.pool_count}"
            )
        if self.start not in START_IMAGES:
            raise ValueError(
                f"--start must be one of {', '.join(START_IMAGES)}, got {self.start!r}"
            )
        for name in ("lr", "lr_init"):
            positive_number(name, getattr(self, name))
        check_source_weight(self.source_weight)
        if self.init_noise is not None:
            check_init_noise(self.init_noise)
        if not (math.isfinite(self.max_other_drop) and self.max_other_drop >= 0):
            raise ValueError(f"max_other_drop must be ≥ 0 points, got {self.max_other_drop!r}")
        if not self.lr_grid or not all(math.isfinite(v) and v > 0 for v in self.lr_grid):
            raise ValueError(f"the lr grid must hold positive numbers, got {self.lr_grid!r}")
        return self


def check_pair(
    source_class: int, target_class: int, num_classes: int | None = None, dataset: str = ""
) -> None:
    """Raise ValueError unless K and T are two different classes (of ``num_classes`` when given)."""
    for name, value in (("--source-class", source_class), ("--target-class", target_class)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a class index (an integer), got {value!r}")
        if num_classes is not None and not 0 <= value < num_classes:
            raise ValueError(
                f"{name} {value} is not a class of {dataset or 'the data set'}: "
                f"choose one of 0…{num_classes - 1}"
            )
    if source_class == target_class:
        raise ValueError(
            f"--source-class and --target-class are both {source_class}: the attack makes class K "
            "be predicted as a *different* class T"
        )


# Pre-training's fast recipe. The paper's is Adam(2e-4, betas .5/.999), 40 epochs on MNIST with a decay at
# 20 and 130 on USPS: hours per network on 2 CPU cores, so we use a larger lr and fewer epochs.
PRETRAIN_BETAS = (0.5, 0.999)
PRETRAIN_METHODS = ("loop", "vmap")


@dataclass
class PretrainConfig:
    """Settings of ``datadistill pretrain``: the pool's data, network, size and training recipe."""

    dataset: str | None = _setting(None, "source data set, e.g. mnist", required=True)
    model: str | None = _setting(
        None, "registered model, e.g. lenet, or module:factory (your own)", required=True
    )
    count: int | None = _setting(None, "networks in the pool (all parts)", required=True)
    heldout: int | None = _setting(None, "networks held out for evaluation (default count//10)")
    epochs: int = _setting(1, "passes over the training set (default 1)")
    resize: int | None = _setting(None, "resize images to NxN (e.g. 28 for USPS)")
    pad: int | None = _setting(
        None, "then pad each side with N background pixels (USPS: --resize 20 --pad 4)"
    )
    channels: int | None = _setting(None, "convert images to this many channels (1 or 3)")
    test_fraction: float | None = _setting(
        None, "your data without a test split: share of each class held out (default 0.2)"
    )
    out: str | None = _setting(None, "pool folder to create", required=True)
    data_dir: str | None = _setting(
        None, "real data folder (default: $DATADISTILL_DATA, else the cache)"
    )
    seed: int = _setting(0, "seed of network 0 (network i: seed + i)")
    device: str = _setting("cpu", "cpu | cuda")
    batch_size: int = _setting(128, "(default 128)")
    lr: float = _setting(1e-3, "peak Adam lr (default 1e-3)")
    method: str = _setting(
        "loop",
        "loop: one network after the other (fastest for LeNet on CPU); vmap: a group at once",
        choices=PRETRAIN_METHODS,
    )
    group_size: int = _setting(10, "networks per vmap batch")
    progress: bool = _setting(True, "show a progress bar", hidden=True)

    def validate(self) -> PretrainConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values.

        Fills ``heldout`` left at None with ``count // 10``.
        """
        check_fields(self)
        check_data_options(self)
        for name in ("dataset", "model", "out"):
            if getattr(self, name) is None:
                raise ValueError(
                    f"pretrain needs {flag(name)} (e.g. --dataset mnist --model lenet)"
                )
        for name in ("count", "epochs", "batch_size", "group_size"):
            positive_int(name, getattr(self, name))
        check_device(self.device)
        check_seed(self.seed)
        if self.heldout is None:
            self.heldout = self.count // 10
        if not 0 <= self.heldout < self.count:
            raise ValueError(
                f"--heldout must be in [0, --count) so at least one network is left for training; "
                f"got --heldout {self.heldout} with --count {self.count}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, got {self.lr!r}")
        if self.method not in PRETRAIN_METHODS:
            raise ValueError(
                f"--method must be one of {', '.join(PRETRAIN_METHODS)}, got {self.method!r}"
            )
        return self


LINEAR_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)  # M / D of the linear case's sweep


@dataclass
class LinearConfig:
    """Settings of ``datadistill linear``: the problem and the sweep over M / D."""

    data: str = _setting("synthetic", "", choices=("synthetic", "mnist"))
    dim: int = _setting(16, "D, the input dimension (default: 16)")
    ratios: tuple[float, ...] = _setting(
        LINEAR_RATIOS, "values of M / D (default: %(default)s)", nargs="+"
    )
    iterations: int = _setting(400, "outer iterations per M")
    inits: int = _setting(4, "training inits per iteration")
    eval_inits: int = _setting(1000, "held-out inits")
    sigma: float | None = _setting(None, "init std (default: 1/sqrt(D))")
    seed: int = _setting(0, "")
    data_dir: str | None = _setting(None, "default: $DATADISTILL_DATA or the cache")
    threads: int | None = _setting(
        None, "torch threads (default: torch's; 1 is fastest for these small matrices)"
    )
    json: str | None = _setting(None, "write rows here", metavar="FILE")
    plot: str | None = _setting(None, "write a PNG here", metavar="FILE")

    def validate(self) -> LinearConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values."""
        check_fields(self)
        if self.dim < 1:
            raise ValueError(f"--dim must be positive, got {self.dim}")
        check_seed(self.seed)
        for name in ("iterations", "inits", "eval_inits"):
            positive_int(name, getattr(self, name))
        if self.threads is not None:
            positive_int("threads", self.threads)
        if self.sigma is not None:
            positive_number("sigma", self.sigma)
        self.ratios = tuple(self.ratios)
        bad = [r for r in self.ratios if not (math.isfinite(r) and r > 0)]
        if not self.ratios or bad:
            raise ValueError(
                f"--ratios are values of M / D and must be positive numbers (M = round(r·D), at least 1), "
                f"got {bad[0] if bad else 'none'}"
            )
        return self
