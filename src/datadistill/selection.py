"""Selecting the result among iterates (``--val-size``): held-out training images and networks to score on."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch
from torch import Tensor

from datadistill.config import EVAL_NETWORKS, DistillConfig
from datadistill.evaluate import Trainer, accuracy
from datadistill.objectives import poison_labels
from datadistill.seeds import generator
from datadistill.types import Params, Steps

# Networks that score iterates with --val-size (random kinds; fixed kinds use their one network).
VAL_NETS = EVAL_NETWORKS["curve"]


@dataclass
class Validation:
    """Held-out training images and fixed networks on which iterates are compared (``--val-size``)."""

    images: Tensor  # [N, C, H, W]
    labels: Tensor  # [N], the objective's labels (class K relabelled T for poison)
    # θ_0 of the networks to replay from, never drawn in distillation (see make_validation)
    nets: list[Params]

    def score(self, model, steps: Steps, trainer: Trainer) -> float:
        """Mean accuracy (%) on the held-out images after training on ``steps`` from each network."""
        steps = Steps(steps.images.detach(), steps.labels.detach(), steps.lrs.detach())
        return statistics.fmean(
            accuracy(model, trainer(p, steps), self.images, self.labels) for p in self.nets
        )


def make_validation(cfg: DistillConfig, inits, held_out, device: torch.device):
    """``(validation or None, inits to distil from)`` for ``--val-size``.

    The held-out images carry the objective's labels (class K relabelled T for ``poison``), so the selected
    iterate is the one best at the objective. The networks are ones distillation never trains on: the fixed
    init itself; fresh draws for ``random``; for ``pretrained-random`` the last ``VAL_NETS`` networks of the
    pool's training part, which are then removed from the pool that distillation samples (otherwise the
    selection would reward fitting the very networks the attack or adaptation was tuned on).
    """
    if held_out is None:
        return None, inits
    labels = held_out.labels
    if cfg.objective == "poison":
        labels = poison_labels(labels, cfg.source_class, cfg.target_class)
    if inits.kind == "pretrained-random":
        if len(inits.pool) <= VAL_NETS:
            raise ValueError(
                f"--val-size with init pretrained-random sets aside {VAL_NETS} of the pool's training "
                f"networks for validation, but the pool has only {len(inits.pool)}: pre-train more "
                "networks (datadistill pretrain --count) or drop --val-size"
            )
        nets = list(inits.pool[-VAL_NETS:])
        inits = dataclasses.replace(inits, pool=inits.pool[:-VAL_NETS])
    else:
        n_val = 1 if inits.is_fixed else VAL_NETS
        nets = [inits.sample(generator(cfg.seed, "val-init", j)) for j in range(n_val)]
    on_device = [{n: p.to(device) for n, p in net.items()} for net in nets]
    return Validation(held_out.images.to(device), labels.to(device), on_device), inits


def split_validation(cfg: DistillConfig, train):
    """``(fit, held_out)``: ``cfg.val_size`` random training images set aside (None when 0)."""
    if not cfg.val_size:
        return train, None
    if cfg.val_size > len(train.labels) // 2:
        raise ValueError(
            f"--val-size {cfg.val_size} would hold out more than half of the {len(train.labels)} "
            f"training images of {cfg.dataset}; use at most {len(train.labels) // 2}"
        )
    order = torch.randperm(len(train.labels), generator=generator(cfg.seed, "validation"))
    held, fit = order[: cfg.val_size], order[cfg.val_size :]
    return train.subset(fit), train.subset(held)  # held as `train` is (8-bit pixels stay 8-bit)
