"""How well a distilled poisoning step works (Wang et al. 2018, §3.5): success and the other classes.

Per network, in percent (``attack_report`` gives mean ± std over held-out pre-trained networks):

- ``success``: fraction of class-K *test* images predicted as T after the step (before: usually ≈ 0);
- ``other``: accuracy on the test images of every class except K, before and after the step;
- ``overall``: accuracy on the whole test set (true labels), before and after.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from datadistill.artifacts import DistilledData
from datadistill.config import EVAL_NETWORKS, positive_int
from datadistill.distributed import resolve_device
from datadistill.evaluate import replay_finite
from datadistill.models.base import tested_logits
from datadistill.setting import setting_from_manifest
from datadistill.unroll import Params, Steps

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
        tested_logits(model, params, images[i : i + batch_size]).argmax(dim=1)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def network_metrics(
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
    final = replay_finite(model, params, steps)
    if final is None:
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


def evaluate_attack(
    model: nn.Module,
    steps: Steps,
    nets: Iterable[Params],
    test_x: Tensor,
    test_y: Tensor,
    source_class: int,
    target_class: int,
) -> dict[str, Any]:
    device = test_x.device
    steps = steps.to(device)
    per_network = [
        network_metrics(
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
    models: int = EVAL_NETWORKS["attack_report"],
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
    positive_int("models", models)
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
    dev = resolve_device(device)
    setting.model.to(dev)  # a user network's constant buffers (parameters come from the inits)
    result = evaluate_attack(
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
