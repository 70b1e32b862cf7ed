"""The outer Adam lr over a distillation run: how far through its schedule a run is, and the lr there."""

from __future__ import annotations

import math
import time

import torch

from datadistill.config import DistillConfig
from datadistill.distributed import World


def time_fraction(world: World, cfg: DistillConfig, started: float) -> float | None:
    """The share of ``--time-limit`` this session has used (None without a limit); above 1: stop.

    Averaged over the ranks, so that all of them stop at the same iteration and set the same lr.
    """
    if cfg.time_limit is None:
        return None
    used = torch.tensor(
        [(time.perf_counter() - started) / (60 * cfg.time_limit)], dtype=torch.float64
    )
    return float(world.all_reduce_sum([used])[0]) / world.size


def schedule_progress(
    iteration: int, iterations: int, time_fraction: float | None = None, start: float = 0.0
) -> float:
    """How far through its lr schedule a run is at ``iteration`` (0-based), in [0, 1].

    Without a time limit: ``iteration / iterations``, a function of the iteration alone, so a resumed run
    sets the same lrs as an uninterrupted one (bit-for-bit). With one (``time_fraction``: the share of the
    limit this session has used), whichever end comes first: ``max(iteration / iterations,
    start + (1 − start) · time_fraction)``, where ``start`` is the progress an earlier session reached, so
    a resumed session spends its own limit on the rest of the schedule. That makes the lrs depend on the
    machine's speed: a time-limited run is not bit-for-bit repeatable (its iterates, not only its length).
    """
    by_iteration = iteration / iterations
    if time_fraction is None:
        return min(by_iteration, 1.0)
    return min(max(by_iteration, start + (1 - start) * time_fraction), 1.0)


def outer_lr(cfg: DistillConfig, iteration: int, progress: float) -> float:
    """The outer Adam lr of the update at ``iteration`` (0-based), ``progress`` from ``schedule_progress``.

    ``step`` (the paper's code): ``lr · decay_factor^⌊iteration / decay_every⌋``, by iterations alone;
    ``decay_every`` defaults to a tenth of the run, so the lr ends at lr/512 however short the run is.
    ``cosine``: ``lr · (f + (1 − f) · (1 + cos πp) / 2)`` with ``f = final_lr_fraction``, p = progress:
    the same total decay for a run of any length, and a time-limited run reaches it by the limit.
    """
    if cfg.schedule == "step":
        decay_every = cfg.decay_every or max(1, cfg.iterations // 10)
        return cfg.lr * cfg.decay_factor ** (iteration // decay_every)
    floor = cfg.final_lr_fraction
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
