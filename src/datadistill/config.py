"""Settings: one dataclass per command, filled from a YAML preset, then from command-line overrides.

Every field's help text is its ``metadata["help"]``; ``metadata["cli"]`` holds what the command line needs
beyond the type and default (choices, a required flag, a metavar, ``hidden`` for settings the CLI does not offer,
``help_has_default`` when the help text already states the default). ``cli.py`` builds each command's options
from these; nothing else parses arguments.

A preset is a YAML mapping whose keys are field names of the command's dataclass (``configs/*.yaml`` ship with
the package and are found by name, e.g. ``--config mnist_fixed``). An unknown key is an error that names the key
and the file. The resolved settings are written next to every run's outputs (``config.yaml``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PRESET_DIR = Path(__file__).parent / "configs"
PROTOCOLS = ("replay", "dataset")  # what a set is distilled for (and evaluated with by default)
INNER_OPTIMIZERS = ("sgd", "momentum", "adam")  # the dataset protocol's inner training
SCHEDULES = ("cosine", "step")  # how the outer Adam lr falls over a run (distill.outer_lr)
AUGMENTATIONS = ("none", "dsa")  # the dataset protocol's evaluation: none, or DSA's
# How many networks a number is measured on when the command is not told (--models, --eval-models): a fixed
# init always has its one network; random kinds (and pre-trained pools) this many held-out draws.
EVAL_NETWORKS = {
    "evaluate": 200,  # `datadistill evaluate`, replay protocol: the paper's 200 held-out inits
    "distill": 20,  # distillation's final evaluation of its result
    "baselines": 20,  # `datadistill baselines`
    "curve": 4,  # distillation's curve points, and the networks --val-size scores iterates on
    "dataset": 5,  # the dataset protocol: fresh networks trained the field's way
    "attack": 10,  # `datadistill attack`: held-out victims
    "attack_report": 20,  # attack_report() called from Python
}


def eval_networks(purpose: str, fixed: bool) -> int:
    """Networks to measure on by default for ``purpose`` (a key of ``EVAL_NETWORKS``); 1 for a fixed init."""
    return 1 if fixed else EVAL_NETWORKS[purpose]


def _setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its help text (``metadata["help"]``) and command-line extras (``"cli"``)."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class DistillConfig:
    """Everything ``datadistill distill`` needs. Defaults follow the reference code (PAPER.md)."""

    dataset: str = _setting(
        "digits",
        "registered name (datadistill datasets), or a path: image folder, .npz, .pt, .safetensors",
    )
    model: str | None = _setting(
        None,
        "registered model or package.module:factory; None: the data set's default (lenet for digits)",
    )
    init: str = _setting("fixed", "fixed | random | pretrained-fixed | pretrained-random")
    init_scheme: str = _setting(
        "xavier", "weight init of fixed/random: xavier (paper) | kaiming | orthogonal | default"
    )
    pretrained: str | None = _setting(
        None, "folder of a `datadistill pretrain` pool (pretrained-* inits)"
    )
    protocol: str = _setting(
        "replay",
        "replay: steps replayed in order with learned lrs (paper) | dataset: train normally on them",
    )
    steps: int | None = _setting(
        None, "distilled GD steps, each with its own images; None: 10 (replay), 1 (dataset)"
    )
    epochs: int | None = _setting(
        None, "passes over the steps, one learned lr per update; None: 3 (replay), 1 (dataset)"
    )
    images_per_class: int = _setting(1, "images of each class in every step")
    learn: str = _setting(
        "all", "all: pixels and step sizes; lrs: keep the starting images, learn only step sizes"
    )
    init_images: str = _setting(
        "noise", "starting pixels: noise (N(0,1), the paper) | real (random real images per class)"
    )
    learn_labels: bool = _setting(False, "learn soft labels (label logits) with the pixels")
    label_targets: str = _setting(
        "softmax", "learned labels: softmax (targets = softmax of logits) | free (raw vectors)"
    )
    images_per_step: int | None = _setting(
        None, "with learned labels: images per step (may be < classes)"
    )
    iterations: int = _setting(1000, "outer iterations (meta-gradient steps)")
    inits_per_iteration: int | None = _setting(
        None, "θ_0 sampled per iteration; None: 1 for fixed, 4 for random"
    )
    batch_size: int = _setting(1024, "real images per meta-loss evaluation")
    lr: float = _setting(0.01, "Adam lr on pixels and raw step sizes")
    betas: tuple[float, float] = _setting((0.5, 0.999), "Adam betas")
    schedule: str = _setting(
        "cosine",
        "outer Adam lr: cosine (from --lr down to --final-lr-fraction of it by the end of the run: "
        "--iterations, or under --time-limit whichever of the two comes first) | step (the paper's: "
        "times --decay-factor every --decay-every iterations)",
    )
    final_lr_fraction: float = _setting(
        0.05, "cosine: the Adam lr at the end, as a fraction of --lr"
    )
    decay_every: int | None = _setting(
        None, "step: halve the Adam lr every N iterations; None: every 10% of iterations"
    )
    decay_factor: float = _setting(0.5, "step: the factor applied every --decay-every iterations")
    lr_init: float = _setting(0.02, "initial learned step size (softplus-parameterised)")
    meta_grad: str = _setting(
        "autograd", "autograd (whole graph) | reverse (memory-saving backward walk)"
    )
    inner_optimizer: str = _setting(
        "momentum", "dataset protocol: sgd | momentum (0.9) | adam, on the distilled set"
    )
    unroll: int = _setting(
        100, "dataset protocol: N inner updates from a fresh init per outer iteration"
    )
    window: int | None = _setting(
        None,
        "dataset protocol: back-propagate through a random window of W of the N updates; None: all",
    )
    inner_batch: int | None = _setting(
        None, "dataset protocol: distilled images per inner update; None: all"
    )
    learn_lr: bool = _setting(
        True, "learn the step size(s); --no-learn-lr keeps --lr-init throughout"
    )
    vmap_inits: bool | None = _setting(
        None, "batch the inits of an iteration with torch.func.vmap; None: on for cuda"
    )
    init_noise: float = _setting(
        0.0, "distillation only: add N(0, (σ·rms of each tensor)²) to every sampled θ_0 (0: off)"
    )
    objective: str = _setting("task", "task | poison")
    source_class: int | None = _setting(
        None, "poison: class K whose images should be predicted as T"
    )
    target_class: int | None = _setting(None, "poison: class T")
    source_weight: float = _setting(
        1.0, "poison: weight of class-K images in the loss (1: the plain mean)"
    )
    resize: int | None = _setting(None, "resize images to NxN (e.g. 28 for USPS next to MNIST)")
    pad: int | None = _setting(
        None, "then pad each side with N background pixels (USPS: resize 20, pad 4)"
    )
    channels: int | None = _setting(
        None, "convert images to this many channels (3 for MNIST next to SVHN)"
    )
    test_fraction: float | None = _setting(
        None,
        "your data without a test split: share of each class held out for testing (default 0.2)",
    )
    seed: int = _setting(
        0, "seeds the fixed init, the synthetic pixels, real batches and sampled inits"
    )
    eval_models: int | None = _setting(
        None, "networks for the final evaluation; None: 1 fixed, 20 random"
    )
    eval_every: int = _setting(200, "evaluate (on a few inits) every N iterations for the curve")
    val_size: int = _setting(
        0, "hold out N training images; the result is the iterate best on them (0: the last)"
    )
    time_limit: float | None = _setting(
        None, "stop after this many minutes of distillation (then evaluate and save as usual)"
    )
    checkpoint_every: int = _setting(100, "write a resumable checkpoint every N iterations")
    data_dir: str | None = _setting(
        None, "data folder; None: $DATADISTILL_DATA, else the user cache"
    )
    out: str | None = _setting(None, "run folder; None: runs/<dataset>-<model>-<init>-<time>")
    resume: bool = _setting(False, "continue the run in --out from its last checkpoint")
    force: bool = _setting(
        False, "write into an --out folder that holds other files (never over a run)"
    )
    device: str = _setting("cpu", "cpu | cuda | cuda:N")
    tensorboard: bool = _setting(False, "also write TensorBoard logs to <out>/tensorboard")

    def validate(self) -> DistillConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values.

        Fills ``steps`` and ``epochs`` left at None with the protocol's defaults.
        """
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"
            )
        dataset_protocol = self.protocol == "dataset"
        if self.steps is None:
            self.steps = 1 if dataset_protocol else 10
        if self.epochs is None:
            self.epochs = 1 if dataset_protocol else 3
        if not isinstance(self.dataset, str):
            raise ValueError(
                f"--dataset must be a registered name or a path, got a {type(self.dataset).__name__}; "
                "to distil arrays or a torch Dataset pass train=(x, y) and test=(x, y) instead"
            )
        if self.test_fraction is not None and not (
            _is_number(self.test_fraction) and 0 < self.test_fraction < 1
        ):
            raise ValueError(
                f"--test-fraction must be a number between 0 and 1 (e.g. 0.2), got {self.test_fraction!r}"
            )
        self._validate_numbers()
        self._validate_choices()
        if dataset_protocol:
            self._validate_dataset_protocol()
        return self

    def _validate_numbers(self) -> None:
        for name in (
            "steps",
            "epochs",
            "unroll",
            "images_per_class",
            "iterations",
            "batch_size",
            "checkpoint_every",
            "eval_every",
        ):
            positive_int(name, getattr(self, name))
        for name in (
            "inits_per_iteration",
            "eval_models",
            "decay_every",
            "images_per_step",
            "resize",
            "channels",
            "window",
            "inner_batch",
        ):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        if (
            isinstance(self.val_size, bool)
            or not isinstance(self.val_size, int)
            or self.val_size < 0
        ):
            raise ValueError(
                f"--val-size must be a whole number of training images >= 0, got {self.val_size!r}"
            )
        if self.pad is not None and (
            isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0
        ):
            raise ValueError(
                f"--pad must be a whole number of pixels >= 0, got {self.pad!r}; to make images "
                "smaller lower --resize instead (e.g. --resize 20 --pad 4 gives 28x28)"
            )
        for name in ("lr", "lr_init"):
            positive_number(name, getattr(self, name))
        check_init_noise(self.init_noise)
        check_source_weight(self.source_weight)
        if self.source_weight != 1.0 and self.objective != "poison":
            raise ValueError(
                "--source-weight weighs class K in the poison objective; it needs --objective poison"
            )
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(
                f"--time-limit must be a positive number of minutes, got {self.time_limit!r}"
            )
        self._validate_schedule()
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")

    def _validate_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not (_is_number(self.decay_factor) and 0 < self.decay_factor <= 1):
            raise ValueError(f"--decay-factor must be in (0, 1], got {self.decay_factor!r}")
        if not (_is_number(self.final_lr_fraction) and 0 < self.final_lr_fraction <= 1):
            raise ValueError(
                "--final-lr-fraction must be in (0, 1] (the cosine schedule's last lr over --lr), "
                f"got {self.final_lr_fraction!r}"
            )
        # Silently ignoring a step setting would train with another schedule than the user asked for.
        if self.schedule != "step" and (self.decay_every is not None or self.decay_factor != 0.5):
            raise ValueError(
                f"--decay-every and --decay-factor set the step schedule, but --schedule is "
                f"{self.schedule}: add --schedule step (the paper's), or drop them"
            )

    def _validate_choices(self) -> None:
        if self.meta_grad not in ("autograd", "reverse"):
            raise ValueError(f"--meta-grad must be 'autograd' or 'reverse', got {self.meta_grad!r}")
        if self.learn not in ("all", "lrs"):
            raise ValueError(f"--learn must be 'all' or 'lrs', got {self.learn!r}")
        if self.init_images not in ("noise", "real"):
            raise ValueError(f"--init-images must be 'noise' or 'real', got {self.init_images!r}")
        if self.images_per_step is not None and not self.learn_labels:
            raise ValueError(
                "--images-per-step needs --learn-labels (with fixed labels every step holds "
                "--images-per-class images of each class)"
            )
        if self.label_targets not in ("softmax", "free"):
            raise ValueError(
                f"--label-targets must be 'softmax' or 'free', got {self.label_targets!r}"
            )
        if self.label_targets != "softmax" and not self.learn_labels:
            raise ValueError(
                f"--label-targets {self.label_targets} needs --learn-labels (fixed labels are classes)"
            )
        if not 0 <= self.seed < 1_000_000_000:
            raise ValueError(f"--seed must be in [0, 1e9), got {self.seed!r}")

    def _validate_dataset_protocol(self) -> None:
        if self.learn_labels and self.label_targets == "free":
            raise ValueError(
                "--label-targets free lets learned targets go negative, and long ordinary training on "
                "negative targets diverges: with --protocol dataset use --label-targets softmax"
            )
        if (self.steps, self.epochs) != (1, 1):
            raise ValueError(
                "--protocol dataset trains on one set of images with one step size: leave --steps and "
                f"--epochs at 1 (got {self.steps} and {self.epochs}) and size the set with "
                "--images-per-class"
            )
        if self.inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(
                f"--inner-optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, "
                f"got {self.inner_optimizer!r}"
            )
        if self.meta_grad != "autograd":
            raise ValueError(
                "--protocol dataset back-propagates through --window updates (memory grows with the "
                "window, not --unroll): use --meta-grad autograd"
            )
        if self.vmap_inits:
            raise ValueError(
                "--vmap-inits batches the replay protocol only; drop it with --protocol dataset"
            )
        if (
            self.window is not None
            and not isinstance(self.window, bool)
            and self.window > self.unroll
        ):
            raise ValueError(
                f"--window {self.window} is longer than --unroll {self.unroll}: use at most "
                f"{self.unroll} (or leave it out to back-propagate through all updates)"
            )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def positive_int(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is an integer ≥ 1 (``name``: the setting, shown as its flag)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{_flag(name)} must be a positive integer, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (``name``: the setting, shown as its flag)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{_flag(name)} must be a positive number, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_init_noise(value: Any) -> None:
    """Raise ValueError unless ``--init-noise`` is a finite number ≥ 0 (shared by distill and attack)."""
    if not (_is_number(value) and value >= 0):
        raise ValueError(
            "--init-noise must be a number >= 0 (relative to each weight tensor's rms), "
            f"got {value!r}"
        )


def check_source_weight(value: Any) -> None:
    """Raise ValueError unless ``--source-weight`` is a finite number > 0 (shared by distill and attack)."""
    if not (_is_number(value) and value > 0):
        raise ValueError(f"--source-weight must be a positive number, got {value!r}")


@dataclass
class EvaluateConfig:
    """Everything ``datadistill evaluate`` needs: the run folder and how to train fresh networks on it."""

    run: str | None = _setting(
        None,
        "folder with distilled.safetensors + manifest.json",
        positional=True,
        metavar="RUN_DIR",
    )
    models: int | None = _setting(None, "networks to train (default: 1 fixed init, 200 random)")
    json: str | None = _setting(None, "also write the result as JSON to this file")
    data_dir: str | None = _setting(
        None,
        "real data folder (default: $DATADISTILL_DATA, else the cache); for a run on your own "
        "data that has moved: the folder now holding it (found by its file or folder name)",
    )
    device: str = _setting("cpu", "cpu | cuda")
    protocol: str | None = _setting(
        None,
        "replay: the distilled steps in order with their learned lrs (the paper's protocol); "
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
        None, "dataset protocol: epochs of the field's recipe (default 300)"
    )
    augment: str = _setting(
        "none",
        "dataset protocol: DSA-style augmentation of every minibatch (default none)",
        choices=AUGMENTATIONS,
    )

    def validate(self) -> EvaluateConfig:
        """Raise ValueError, naming the setting and what is allowed, for nonsense values."""
        if self.run is None:
            raise ValueError("evaluate needs the run folder to evaluate (RUN_DIR)")
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
    model: str | None = _setting(
        None, "registered model (default: the data set's, lenet for MNIST)"
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
        check_pair(self.source_class, self.target_class, num_classes, self.dataset)
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
    for flag, value in (("--source-class", source_class), ("--target-class", target_class)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{flag} must be a class index (an integer), got {value!r}")
        if num_classes is not None and not 0 <= value < num_classes:
            raise ValueError(
                f"{flag} {value} is not a class of {dataset or 'the data set'}: "
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
    model: str | None = _setting(None, "registered model, e.g. lenet", required=True)
    count: int | None = _setting(None, "networks in the pool (all parts)", required=True)
    heldout: int | None = _setting(None, "networks held out for evaluation (default count//10)")
    epochs: int = _setting(1, "passes over the training set (default 1)")
    resize: int | None = _setting(None, "resize images to NxN (e.g. 28 for USPS)")
    pad: int | None = _setting(
        None, "then pad each side with N background pixels (USPS: --resize 20 --pad 4)"
    )
    channels: int | None = _setting(None, "convert images to this many channels (1 or 3)")
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
        for name in ("dataset", "model", "out"):
            if getattr(self, name) is None:
                raise ValueError(
                    f"pretrain needs {_flag(name)} (e.g. --dataset mnist --model lenet)"
                )
        for name in ("count", "epochs", "batch_size", "group_size"):
            positive_int(name, getattr(self, name))
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
        if self.dim < 1:
            raise ValueError(f"--dim must be positive, got {self.dim}")
        self.ratios = tuple(self.ratios)
        return self


def list_presets() -> list[str]:
    """Names of the YAML presets that ship with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def find_preset(name_or_path: str | Path) -> Path:
    """A preset by file path, or by name among the shipped presets."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = PRESET_DIR / f"{path.stem}.yaml"
    if shipped.is_file() and path.suffix in ("", ".yaml") and len(path.parts) == 1:
        return shipped
    close = difflib.get_close_matches(path.stem, list_presets(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise FileNotFoundError(
        f"config {name_or_path!s} not found: give a YAML file or one of the presets "
        f"{', '.join(list_presets())}{hint}"
    )


def load_config(cls, preset: str | Path | None = None, overrides: dict[str, Any] | None = None):
    """Build ``cls`` (a config dataclass) from a YAML preset, then ``overrides`` (None values are skipped).

    Raises:
        ValueError: a key of the preset is not a setting of ``cls`` (the message names the key and file).
    """
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if preset is not None:
        path = find_preset(preset)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a mapping of setting: value")
        for key, value in loaded.items():
            norm = str(key).replace("-", "_")
            if norm not in names:
                close = difflib.get_close_matches(norm, sorted(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{path}: unknown setting {key!r}{hint}")
            values[norm] = tuple(value) if isinstance(value, list) else value
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    cfg = cls(**values)
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def to_dict(cfg) -> dict[str, Any]:
    """The config as plain YAML/JSON-able values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg, path: Path, notes: list[str] | None = None) -> None:
    """Write the resolved settings as YAML; ``notes`` become ``#`` comment lines above them."""
    from datadistill.artifacts import _replace_atomically

    text = "".join(f"# {line}\n" for line in notes or ()) + yaml.safe_dump(
        to_dict(cfg), sort_keys=False
    )
    _replace_atomically(Path(path), lambda tmp: Path(tmp).write_text(text))
