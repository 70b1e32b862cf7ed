"""The poisoning attack for every pair of classes (K, T): a success matrix, saved as JSON and a heat-map."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datadistill.artifacts import check_figure_path, write_json
from datadistill.config import (
    AttackConfig,
)
from datadistill.experiments.attack import default_model, distill_attack, ensure_pool, resolve
from datadistill.experiments.attack_report import attack_report


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
    if path is not None:
        check_figure_path(path, "--heatmap")
    cfg, out, train = resolve(cfg)
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
        f"{cfg.dataset} {cfg.model or default_model(cfg.dataset)}, "
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
