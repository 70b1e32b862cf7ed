"""Figures: grids of distilled images (one row per step, with its learned lrs) and training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

ROWS_PER_FIGURE = 10
# The accuracy axis spans at least this many points, so that noise on a flat curve does not fill the plot
# and look like a collapse.
MIN_ACCURACY_SPAN = 20.0


def _as_image(x: Tensor):
    x = x.detach().float().clamp(0, 1).cpu()
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _label_text(label: Tensor, class_names: Sequence[str]) -> str:
    if label.is_floating_point():  # soft targets: the top-2 classes and their weights
        top = label.topk(min(2, label.numel()))
        return "\n".join(
            f"{class_names[i]} {p:.2f}"
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
    return str(class_names[int(label)])


def save_step_grids(
    images: Tensor,
    labels: Tensor,
    lrs: Tensor,
    class_names: Sequence[str],
    out_dir: str | Path,
    prefix: str = "steps",
) -> list[Path]:
    """Draw every distilled step as a row of images titled with that step's lrs (one per epoch).

    Args:
        images: ``[S, n, C, H, W]`` de-normalised to [0, 1].
        labels: ``[S, n]`` classes or ``[S, n, K]`` soft targets (``DistilledData.targets()``).
        lrs: ``[S * E]`` learned step sizes; update t uses step t mod S.
        class_names: names of the K classes.
        out_dir: folder for ``<prefix>.png`` (or ``<prefix>_000-009.png``… when S > 10).

    Returns:
        The PNG paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_steps, per_step = images.shape[:2]
    lrs_by_step = lrs.detach().cpu().reshape(-1, num_steps).T  # [S, E]
    paths = []
    for first in range(0, num_steps, ROWS_PER_FIGURE):
        rows = range(first, min(first + ROWS_PER_FIGURE, num_steps))
        cols = min(per_step, 20)
        fig, axes = plt.subplots(
            len(rows), cols, figsize=(1.1 * cols, 1.45 * len(rows)), squeeze=False
        )
        cmap = "gray" if images.shape[2] == 1 else None
        for r, s in enumerate(rows):
            for c in range(cols):
                ax = axes[r][c]
                ax.imshow(_as_image(images[s, c]), cmap=cmap, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(_label_text(labels[s, c], class_names), fontsize=7)
            lr_text = ", ".join(f"{v:.3g}" for v in lrs_by_step[s].tolist())
            axes[r][0].set_title(f"step {s}: lr per epoch {lr_text}", fontsize=8, loc="left")
        epochs = lrs_by_step.shape[1]
        fig.suptitle(
            f"distilled images, one row per step; 'lr a, b, …': the learned step size of that step "
            f"in each of the {epochs} epoch(s)",
            fontsize=8,
        )
        fig.tight_layout()
        name = prefix if num_steps <= ROWS_PER_FIGURE else f"{prefix}_{rows[0]:03d}-{rows[-1]:03d}"
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Meta-loss and evaluation accuracy against outer iteration, saved as a PNG.

    Args:
        history: records with ``iteration`` and ``loss``, some also with ``accuracy`` (and ``accuracy_std``).
    """
    fig = curve_figure(history)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curve_figure(history: Sequence[dict]):
    """The figure of ``plot_curves``: titled panels, the accuracy axis at least ``MIN_ACCURACY_SPAN``
    points tall and within [0, 100]."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.set_title("meta-loss on real batches (lower is better)", fontsize=10)
    ax_acc.set_title("test accuracy after training on the distilled steps", fontsize=10)
    its = [h["iteration"] for h in history if "loss" in h]
    ax_loss.plot(its, [h["loss"] for h in history if "loss" in h], lw=0.8)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("meta-loss (real batch)")
    ax_loss.set_yscale("log")
    evals = [h for h in history if "accuracy" in h]
    if evals:
        x = [h["iteration"] for h in evals]
        y = torch.tensor([h["accuracy"] for h in evals])
        s = torch.tensor([h.get("accuracy_std", 0.0) for h in evals])
        ax_acc.plot(x, y, marker="o")
        ax_acc.fill_between(x, (y - s).tolist(), (y + s).tolist(), alpha=0.2)
        low, high = float((y - s).min()), float((y + s).max())
        pad = max(0.0, MIN_ACCURACY_SPAN - (high - low)) / 2
        low, high = low - pad, high + pad
        if low < 0:
            low, high = 0.0, min(100.0, high - low)
        if high > 100:
            low, high = max(0.0, low - (high - 100)), 100.0
        ax_acc.set_ylim(low, high)
    ax_acc.set_xlabel("iteration")
    ax_acc.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    return fig


def save_thumbnail_sheet(
    rows: Sequence[tuple[str, Tensor]], path: str | Path, per_row: int = 10
) -> Path:
    """One row of thumbnails per named set: its first ``per_row`` images (the first step's, in order).

    Args:
        rows: ``(title, images [N, C, H, W] de-normalised to [0, 1])`` per set.
        path: the PNG to write.
    """
    label_width = 3.2  # inches kept on the left for the row titles
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(label_width + 0.9 * per_row, 0.95 * len(rows)), squeeze=False
    )
    for r, (title, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                cmap = "gray" if images.shape[1] == 1 else None
                ax.imshow(_as_image(images[c]), cmap=cmap, vmin=0, vmax=1)
        axes[r][0].text(-0.15, 0.5, title, transform=axes[r][0].transAxes, ha="right", va="center")
    width = fig.get_figwidth()
    fig.subplots_adjust(left=label_width / width, right=0.99, top=0.98, bottom=0.02, wspace=0.05)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
