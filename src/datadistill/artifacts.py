"""Distilled sets and checkpoints on disk: safetensors tensors + a JSON manifest, never pickles.

A run folder holds ``distilled.safetensors`` (images ``[steps, per_step, C, H, W]``, labels, lrs
``[steps * epochs]``) and ``manifest.json`` (everything needed to rebuild the network, the init distribution and
the data normalisation, plus measured accuracy). Every write goes to a temporary file in the same folder and is
moved into place with ``os.replace``, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from datadistill._version import __version__
from datadistill.types import Steps

DISTILLED_FILE = "distilled.safetensors"
MANIFEST_FILE = "manifest.json"
LABEL_TARGETS = ("softmax", "free")


def label_targets(labels: Tensor, kind: str = "softmax") -> Tensor:
    """What the inner loss trains on, from stored labels: classes stay classes, learned labels become targets.

    Args:
        labels: ``[..., n]`` int64 classes, or ``[..., n, K]`` learned label parameters.
        kind: ``"softmax"``: the parameters are logits and the target is ``softmax(labels)`` (each sums to
            one); ``"free"``: the parameters are the target vectors themselves (any scale or sign, as in the
            soft-label follow-up of Sucholutsky & Schonlau 2019).
    """
    if not labels.is_floating_point():
        return labels
    if kind == "softmax":
        return labels.softmax(dim=-1)
    if kind == "free":
        return labels
    raise ValueError(f"unknown label targets {kind!r}: choose one of {', '.join(LABEL_TARGETS)}")


@dataclass
class DistilledData:
    """A distilled data set: the images, labels and step sizes to replay, and how they were made.

    Attributes:
        images: ``[steps, per_step, C, H, W]`` in the normalised pixel space of ``manifest["mean"/"std"]``.
        labels: ``[steps, per_step]`` int64 classes, or ``[steps, per_step, K]`` learned label parameters
            (logits or free targets, per ``manifest["label_targets"]``; ``targets()`` gives what training uses).
        lrs: ``[steps * epochs]`` positive step sizes, update t uses ``images[t % steps]``.
        manifest: JSON-able facts: dataset, model, init kind and seed, steps, epochs, normalisation, accuracy, …
    """

    images: Tensor
    labels: Tensor
    lrs: Tensor
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return self.images.shape[0]

    @property
    def epochs(self) -> int:
        return self.lrs.shape[0] // self.num_steps

    @property
    def soft_labels(self) -> bool:
        return self.labels.is_floating_point()

    @property
    def label_targets(self) -> str:
        """How learned labels become training targets: ``"softmax"`` (logits; older sets) or ``"free"``."""
        return self.manifest.get("label_targets") or "softmax"

    def targets(self) -> Tensor:
        """The labels as training uses them: ``[S, n]`` classes or ``[S, n, K]`` soft targets."""
        return label_targets(self.labels, self.label_targets)

    def pixels(self) -> Tensor:
        """The images de-normalised by the manifest's mean/std: ``[S, n, C, H, W]``, about [0, 1]."""
        mean = torch.tensor(self.manifest["mean"]).view(-1, 1, 1)
        std = torch.tensor(self.manifest["std"]).view(-1, 1, 1)
        return self.images * std + mean

    def steps(self) -> Steps:
        """The schedule as ``unroll`` consumes it."""
        return Steps(self.images, self.targets(), self.lrs)

    def save(self, folder: str | Path) -> Path:
        """Write ``distilled.safetensors`` and ``manifest.json`` into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"images": self.images, "labels": self.labels, "lrs": self.lrs}
        save_tensors(folder / DISTILLED_FILE, tensors)
        manifest = {"version": __version__, **self.manifest}
        manifest.update(
            steps=self.num_steps,
            epochs=self.epochs,
            images_shape=list(self.images.shape),
            soft_labels=self.soft_labels,
            label_targets=self.label_targets if self.soft_labels else None,
        )
        write_json(folder / MANIFEST_FILE, manifest)
        self.manifest = manifest
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DistilledData:
        """Read a distilled set written by ``save`` (or a run folder of ``datadistill distill``)."""
        folder = Path(folder)
        path, manifest_path = folder / DISTILLED_FILE, folder / MANIFEST_FILE
        if not path.is_file() or not manifest_path.is_file():
            raise FileNotFoundError(
                f"no distilled set in {folder}: expected {DISTILLED_FILE} and {MANIFEST_FILE}; "
                "pass the --out folder of a finished `datadistill distill` run"
            )
        tensors = load_tensors(path)
        missing = {"images", "labels", "lrs"} - tensors.keys()
        if missing:
            raise ValueError(
                f"{path} is not a distilled set: tensors {sorted(missing)} are missing"
            )
        manifest = json.loads(manifest_path.read_text())
        pretrained = manifest.get("pretrained")
        if pretrained and not Path(pretrained).is_absolute():
            # Released sets carry their pre-trained network beside them (``gallery.publish``).
            manifest["pretrained"] = str(folder / pretrained)
        return cls(tensors["images"], tensors["labels"], tensors["lrs"], manifest)


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _replace_atomically(path: Path, write) -> None:
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    _replace_atomically(
        Path(path), lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n")
    )


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = (
            tensors[name].detach().contiguous().cpu().reshape(-1)
        )  # 0-dim tensors cannot be viewed as bytes
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Save tensors as safetensors, atomically, with a sha256 of their contents in the metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {**(metadata or {}), "sha256": _digest(tensors)}
    _replace_atomically(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_tensors(path: str | Path, *, with_metadata: bool = False):
    """Load a safetensors file written by ``save_tensors``; refuse it if it is truncated or corrupted.

    Raises:
        ValueError: the file cannot be parsed or its contents do not match the stored sha256.
    """
    path = Path(path)
    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{path} is unreadable or corrupted ({err}); delete it or restore a copy"
        ) from err
    expected = metadata.get("sha256")
    if expected is not None and _digest(tensors) != expected:
        raise ValueError(f"{path} is corrupted: its contents do not match the sha256 stored in it")
    return (tensors, metadata) if with_metadata else tensors
