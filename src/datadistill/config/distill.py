"""``datadistill distill``'s settings (``DistillConfig``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from datadistill.config.settings import (
    AUGMENTATIONS,
    INIT_IMAGE_KINDS,
    INIT_SCHEMES,
    INNER_OPTIMIZERS,
    PROTOCOLS,
    SCHEDULES,
    VMAP_AUGMENT_CONFLICT,
    _setting,
    check_data_options,
    check_device,
    check_fields,
    check_init_noise,
    check_seed,
    check_source_weight,
    comma_separated,
    flag,
    is_finite_number,
    positive_int,
    positive_number,
)


@dataclass
class DistillConfig:
    """Everything ``datadistill distill`` needs. Defaults follow the reference code (PAPER.md)."""

    # --schedule cosine on a step preset drops the preset's step settings (config.presets.load_config).
    PRESET_DEPENDENTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "schedule": ("decay_every", "decay_factor")
    }

    dataset: str = _setting(
        "digits",
        "registered name (datadistill datasets), or a path: image folder, .npz, .pt, .safetensors",
    )
    model: str | None = _setting(
        None,
        "registered model or package.module:factory; None: the data set's default (mlp for digits, "
        "alexcifarnet for cifar10 and svhn, else lenet; your data: lenet from 12x12 pixels up, else mlp)",
    )
    init: str = _setting("fixed", "fixed | random | pretrained-fixed | pretrained-random")
    init_scheme: str | None = _setting(
        None,
        "weight init of fixed/random: xavier | kaiming | orthogonal | default (PyTorch's); None: "
        "xavier (replay, the paper's), default (dataset: the field's evaluation trains networks from "
        "PyTorch's default init)",
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
        "noise",
        "starting pixels: noise (N(0,1), the paper) | real (random real images per class) | kmeans "
        "(k-means centroids of each class's training images) | the folder of a distilled set of the "
        "same data and shape, to go on distilling it (its pixels and step sizes are the start)",
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
    batch_per_rank: bool = _setting(
        False,
        "under torchrun: every process draws its own --batch-size real images (disjoint), so N "
        "processes take the meta-loss on N x --batch-size; off: all processes share one batch",
    )
    lr: float = _setting(0.01, "Adam lr on pixels and raw step sizes")
    label_lr: float | None = _setting(
        None,
        "with --learn-labels: Adam lr on the label logits, following --lr's schedule; None: --lr",
    )
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
        None,
        "step: multiply the Adam lr by --decay-factor every N iterations; None: every 10% of iterations",
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
    inner_augment: str = _setting(
        "none",
        "dataset protocol: none | dsa | dc (every inner minibatch through DSA's or DC's "
        "differentiable transforms; for sets evaluated with the same --augment)",
    )
    formation: int = _setting(
        1,
        "multi-formation factor F (IDC): every stored image is an FxF grid of images at 1/F the "
        "resolution, each upsampled for training, so the set trains on F² times the images in the "
        "same storage (the replay protocol decodes every step's images); 1: off",
    )
    extra_models: tuple[str, ...] = _setting(
        (),
        "dataset protocol: comma-separated networks to distil for besides --model (e.g. lenet,mlp): "
        "every outer iteration also trains --inits-per-iteration fresh inits of each, and the "
        "meta-gradient averages over all of them, so the set trains these architectures too",
    )
    learn_lr: bool = _setting(
        True, "learn the step size(s); --no-learn-lr keeps --lr-init throughout"
    )
    vmap_inits: bool | None = _setting(
        None,
        "batch the inits of an iteration with torch.func.vmap (under --protocol dataset they share "
        "one window and minibatch order); None: on for cuda with the replay protocol",
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
    checkpoint_every: int = _setting(
        100,
        "write a resumable checkpoint every N iterations (once the step after it came out finite)",
    )
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

        Fills ``steps``, ``epochs`` and ``init_scheme`` left at None with the protocol's defaults.
        """
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"
            )
        check_device(self.device)
        dataset_protocol = self.protocol == "dataset"
        if self.steps is None:
            self.steps = 1 if dataset_protocol else 10
        if self.epochs is None:
            self.epochs = 1 if dataset_protocol else 3
        if self.init_scheme is None:
            # Distil for the init distribution the set will be judged from (+1.2 points on
            # Fashion-MNIST 1 per class against Xavier; docs/notes.md).
            self.init_scheme = "default" if dataset_protocol else "xavier"
        if self.init_scheme not in INIT_SCHEMES:
            raise ValueError(
                f"--init-scheme must be one of {', '.join(INIT_SCHEMES)}, got {self.init_scheme!r}"
            )
        if not isinstance(self.dataset, str):
            raise ValueError(
                f"--dataset must be a registered name or a path, got a {type(self.dataset).__name__}; "
                "to distil arrays or a torch Dataset pass train=(x, y) and test=(x, y) instead"
            )
        check_fields(self)
        check_data_options(self)
        self._validate_numbers()
        self._validate_choices()
        self._validate_extra_models()
        if dataset_protocol:
            self._validate_dataset_protocol()
        elif self.inner_augment != "none":
            raise ValueError(
                "--inner-augment augments the dataset protocol's minibatches: add --protocol dataset "
                "(or drop --inner-augment)"
            )
        elif self.extra_models:
            raise ValueError(
                "--extra-models distils one set for several networks trained on it as a data set: add "
                "--protocol dataset (or drop --extra-models)"
            )
        else:
            self._refuse_dataset_protocol_settings()
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
            "formation",
        ):
            positive_int(name, getattr(self, name))
        for name in (
            "inits_per_iteration",
            "eval_models",
            "decay_every",
            "images_per_step",
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
        for name in ("lr", "lr_init"):
            positive_number(name, getattr(self, name))
        if self.label_lr is not None:
            positive_number("label_lr", self.label_lr)
            if not self.learn_labels:
                raise ValueError(
                    "--label-lr sets the Adam lr of learned labels: it needs --learn-labels"
                )
        check_init_noise(self.init_noise)
        check_source_weight(self.source_weight)
        if self.source_weight != 1.0 and self.objective != "poison":
            raise ValueError(
                "--source-weight weighs class K in the poison objective; it needs --objective poison"
            )
        self._validate_objective()
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(
                f"--time-limit must be a positive number of minutes, got {self.time_limit!r}"
            )
        self._validate_schedule()
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(
                f"--betas must be two numbers in [0, 1) (e.g. --betas 0.9 0.999), got {self.betas!r}"
            )

    def _validate_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not (is_finite_number(self.decay_factor) and 0 < self.decay_factor <= 1):
            raise ValueError(f"--decay-factor must be in (0, 1], got {self.decay_factor!r}")
        if not (is_finite_number(self.final_lr_fraction) and 0 < self.final_lr_fraction <= 1):
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
        if self.pretrained is not None and not self.init.startswith("pretrained"):
            raise ValueError(
                f"--pretrained is a pool for --init pretrained-fixed or pretrained-random, and --init "
                f"{self.init} would ignore it: choose one of those inits, or drop --pretrained"
            )
        if self.learn == "lrs" and not self.learn_lr and not self.learn_labels:
            raise ValueError(
                "--learn lrs with --no-learn-lr leaves nothing to learn: drop --no-learn-lr, or use --learn all"
            )
        # On --resume the checkpoint holds all the folder gave, so it may since have moved.
        folder = self.init_images not in INIT_IMAGE_KINDS
        if folder and not self.resume and not Path(self.init_images).is_dir():
            raise ValueError(
                "--init-images must be noise, real, kmeans or the folder of a distilled set to go on "
                f"distilling (a run's --out, or one `datadistill pull` wrote), got {self.init_images!r}"
                " (no such folder)"
            )
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
        check_seed(self.seed)

    def _validate_objective(self) -> None:
        """Before the run folder is made: the objective is only built in the first iteration."""
        if self.objective not in ("task", "poison"):
            raise ValueError(f"--objective must be task or poison, got {self.objective!r}")
        classes = (self.source_class, self.target_class)
        if self.objective == "task" and classes != (None, None):
            raise ValueError(
                "--source-class and --target-class name the poison objective's classes: add "
                "--objective poison, or drop them"
            )
        if self.objective == "poison":
            if None in classes:
                raise ValueError("--objective poison needs --source-class K and --target-class T")
            if self.source_class == self.target_class:
                raise ValueError(
                    f"--source-class and --target-class are both {self.source_class}: poisoning a "
                    "class into itself changes nothing; give two different classes"
                )

    def _validate_extra_models(self) -> None:
        if isinstance(self.extra_models, str):  # Python callers may pass "lenet,mlp"
            self.extra_models = comma_separated(self.extra_models)
        if not isinstance(self.extra_models, (tuple, list)) or not all(
            isinstance(m, str) and m for m in self.extra_models
        ):
            raise ValueError(
                "--extra-models must be network names or module:factory specs, comma-separated "
                f"(e.g. lenet,mlp), got {self.extra_models!r}"
            )
        self.extra_models = tuple(self.extra_models)
        # --model named again is caught where it is resolved (distill._setup): it may be the default.
        repeated = sorted({m for m in self.extra_models if self.extra_models.count(m) > 1})
        if repeated:
            raise ValueError(
                f"--extra-models names {', '.join(repeated)} twice: list each network once"
            )

    def _refuse_dataset_protocol_settings(self) -> None:
        """Under replay, the dataset protocol's inner-training settings would be ignored: say so."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in ("inner_optimizer", "unroll", "window", "inner_batch"):
            if getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"{flag(name)} sets the dataset protocol's inner training, which the replay protocol "
                    f"does not use: add --protocol dataset (or drop {flag(name)})"
                )

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
        if self.inner_augment not in AUGMENTATIONS:
            raise ValueError(
                f"--inner-augment must be one of {', '.join(AUGMENTATIONS)}, got {self.inner_augment!r}"
            )
        if self.extra_models and self.init != "random":
            raise ValueError(
                "--extra-models draws fresh inits of every network each iteration: use --init random "
                f"(got --init {self.init})"
            )
        if self.meta_grad != "autograd":
            raise ValueError(
                "--protocol dataset back-propagates through --window updates (memory grows with the "
                "window, not --unroll): use --meta-grad autograd"
            )
        if self.vmap_inits and self.inner_augment != "none":
            raise ValueError(VMAP_AUGMENT_CONFLICT)
        if (
            self.window is not None
            and not isinstance(self.window, bool)
            and self.window > self.unroll
        ):
            raise ValueError(
                f"--window {self.window} is longer than --unroll {self.unroll}: use at most "
                f"{self.unroll} (or leave it out to back-propagate through all updates)"
            )
