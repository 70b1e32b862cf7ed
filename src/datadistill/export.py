"""Export a distilled set for a trainer of your own: its training images in pixel space, outside this package.

A stored set holds normalised pixels (``manifest["mean"/"std"]``), and with ``--formation F`` each stored image
packs F×F training images. The export writes what a network is trained on: the decoded set
(``DistilledData.training_set``, N = steps · per_step · F² images) de-normalised to pixels (about [0, 1]):

- ``.npz`` (exact): ``images`` ``[N, C, H, W]`` float32 pixels, unclipped; ``labels`` ``[N]`` int64 classes or,
  for learned labels, ``targets`` ``[N, K]`` float32 (what training uses: softmax of the logits, or the free
  vectors); ``step`` ``[N]`` which replay step an image belongs to; ``lrs`` the learned step sizes (replay uses
  ``lrs[t]`` with step ``t % steps``); ``mean``, ``std`` (normalise ``(images − mean) / std`` as the set's
  numbers were measured); ``class_names``.
- an image folder (torchvision's ``ImageFolder`` layout, ``<k>-<class name>/<i>.png``): 8-bit PNGs, so pixels
  are clipped to [0, 1] and rounded; hard labels only. ``ExportReport.clipped`` says how many values were
  clipped. The class index k leads each folder name, so ``ImageFolder``'s sorted folders give label k again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datadistill.artifacts import DistilledData, check_writable

__all__ = ["ExportReport", "export_set"]


@dataclass(frozen=True)
class ExportReport:
    """What ``export_set`` wrote: ``path``, ``images`` (N), ``kind`` (``npz`` or ``folder``) and, for a folder,
    ``clipped``, the fraction of pixel values outside [0, 1] that were clipped."""

    path: Path
    images: int
    kind: str
    clipped: float = 0.0


def export_set(data: DistilledData, out: str | Path) -> ExportReport:
    """Write ``data``'s training images to ``out``: a ``.npz`` file, or else a new image folder.

    Raises:
        ValueError: ``out`` exists (nothing is overwritten), has another suffix, or is a folder for a set
            with learned labels (PNG folders carry one class per image: use ``.npz``).
    """
    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ValueError(f"--out {out} already exists; choose a new path (nothing is overwritten)")
    if out.suffix and out.suffix != ".npz":
        raise ValueError(
            f"--out {out}: give a .npz file (exact float pixels) or a folder (8-bit PNGs per class), "
            f"not {out.suffix}"
        )
    check_writable(out, "--out", folder=not out.suffix)
    images, targets = data.training_set()  # [N, C, H, W] normalised, [N] or [N, K]
    mean, std = (
        data.normalisation()
    )  # [C] each; refused, naming the fix, when the manifest lacks them
    pixels = images * std.view(-1, 1, 1) + mean.view(-1, 1, 1)
    per_image = data.images.shape[1] * data.formation**2  # training images per replay step
    step = torch.arange(data.num_steps).repeat_interleave(per_image)
    names = list(data.manifest.get("class_names") or [str(k) for k in range(_classes(data))])
    if out.suffix == ".npz":
        return _write_npz(out, pixels, targets, step, data, mean, std, names)
    if targets.is_floating_point():
        raise ValueError(
            f"--out {out}: this set has learned labels (a target vector per image), which an image "
            "folder cannot hold; export it to a .npz file"
        )
    return _write_folder(out, pixels, targets, names)


def _classes(data: DistilledData) -> int:
    return int(data.manifest.get("num_classes") or int(data.labels.max()) + 1)


def _write_npz(out, pixels, targets, step, data, mean, std, names) -> ExportReport:
    arrays = {
        "images": pixels.numpy().astype(np.float32),
        "step": step.numpy(),
        "lrs": data.lrs.detach().numpy().astype(np.float32),
        "mean": mean.numpy().astype(np.float32),
        "std": std.numpy().astype(np.float32),
        "class_names": np.array(names),
    }
    if targets.is_floating_point():
        arrays["targets"] = targets.detach().numpy().astype(np.float32)
    else:
        arrays["labels"] = targets.numpy().astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("xb") as f:  # exclusive: never over a file made since the check
        np.savez(f, **arrays)
    return ExportReport(out, len(pixels), "npz")


def _write_folder(out, pixels, labels, names) -> ExportReport:
    from PIL import Image

    clipped = float(((pixels < 0) | (pixels > 1)).float().mean())
    eight_bit = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)  # [N, C, H, W]
    width = len(str(len(pixels) - 1))  # zero-padded names sort in the set's order
    folders = _class_folders(names)
    for i, (image, label) in enumerate(zip(eight_bit, labels.tolist(), strict=True)):
        folder = out / folders[label]
        folder.mkdir(parents=True, exist_ok=True)
        array = image.permute(1, 2, 0).numpy()  # [H, W, C]
        picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        picture.save(folder / f"{i:0{width}d}.png")
    return ExportReport(out, len(pixels), "folder", clipped)


def _class_folders(names: list[str]) -> list[str]:
    """``k-name`` per class, k zero-padded so that sorted folders keep the label order; characters a folder
    name cannot hold (``/`` in Fashion-MNIST's ``T-shirt/top``) become ``-``."""
    width = len(str(len(names) - 1))
    return [f"{k:0{width}d}-{re.sub(r'[^A-Za-z0-9_.+-]+', '-', n)}" for k, n in enumerate(names)]
