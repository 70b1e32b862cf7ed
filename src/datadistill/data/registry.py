"""The dataset registry: what each data set looks like and which files hold it.

A :class:`DatasetSpec` is pure description (shape, classes, normalisation, files with checksums,
where to download them, and a reader that turns the files into tensors). The loader in
:mod:`datadistill.data.loading` drives every data set through the same path, so adding one is a
single :func:`register_dataset` call.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

# reader(folder, split) -> (images [N, C, H, W], labels [N] int64). Images are either uint8 in
# [0, 255] or float32 already in [0, 1]; the loader scales uint8 by 1/255.
Reader = Callable[[Path, str], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class FileSpec:
    """One file a data set needs, with the digests that prove it is the canonical release."""

    name: str  # path relative to the data set's folder, e.g. "cifar-10-batches-py/test_batch"
    sha256: str | None  # hex digest, or None when no trusted value is known
    md5: str | None  # hex digest as published by the data set's authors, or None
    url: str | None  # canonical download URL, or None when the file cannot be fetched directly
    split: str | None = None  # the split that needs this file ("train", "test"); None = every split


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the loader needs to know about a data set.

    `alternatives` covers data that circulates in a second canonical form (USPS as the ESL text
    files or as LIBSVM files): for a split whose primary `files` are absent, the loader uses the
    alternatives if all of them are present, and the reader must apply the same rule.
    """

    name: str  # registry key, e.g. "mnist"
    image_shape: tuple[int, int, int]  # (C, H, W) as stored on disk
    num_classes: int  # labels are 0 .. num_classes - 1
    class_names: tuple[str, ...]  # human-readable name per label
    mean: tuple[float, ...]  # per-channel mean of the train split on [0, 1] pixels
    std: tuple[float, ...]  # per-channel std of the train split on [0, 1] pixels
    files: tuple[FileSpec, ...]  # files under <data_dir>/<subdir>/; () if shipped in a package
    homepage: str  # where a person can read about the data and its licence
    reader: Reader  # reader(folder, split) -> (images [N, C, H, W], labels [N] int64)
    subdir: str  # folder name under the data dir, e.g. "fashion-mnist"
    splits: tuple[str, ...] = ("train", "test")  # accepted values of load_dataset(split=...)
    archive: FileSpec | None = None  # downloaded and unpacked when `files` are missing (CIFAR-10)
    alternatives: tuple[FileSpec, ...] = ()  # stand-ins for absent `files`; never downloaded

    def files_for(self, split: str) -> tuple[FileSpec, ...]:
        """The primary files that `split` needs."""
        return tuple(f for f in self.files if f.split in (None, split))

    def alternatives_for(self, split: str) -> tuple[FileSpec, ...]:
        """The alternative files that can stand in for `split`'s primary files."""
        return tuple(f for f in self.alternatives if f.split in (None, split))


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    """Add a data set to the registry so :func:`load_dataset` can find it by name.

    Args:
        spec: The description of the data set.
        overwrite: Replace an existing entry of the same name instead of raising.

    Returns:
        `spec`, unchanged, so the call can be used inline.

    Raises:
        ValueError: If the name is taken (and `overwrite` is False) or the spec is inconsistent.
    """
    if spec.name in _DATASETS and not overwrite:
        raise ValueError(
            f"dataset {spec.name!r} is already registered; pass overwrite=True to replace it"
        )
    channels = spec.image_shape[0]
    if len(spec.mean) != channels or len(spec.std) != channels:
        raise ValueError(
            f"dataset {spec.name!r}: mean/std need one value per channel ({channels}), "
            f"got mean={spec.mean} std={spec.std}"
        )
    if len(spec.class_names) != spec.num_classes:
        raise ValueError(
            f"dataset {spec.name!r}: {len(spec.class_names)} class names for "
            f"{spec.num_classes} classes"
        )
    _DATASETS[spec.name] = spec
    return spec


def _unregister_dataset(name: str) -> None:
    """Remove a registry entry (tests register throw-away specs and clean up after themselves)."""
    _DATASETS.pop(name, None)


def list_datasets() -> list[str]:
    """Names of all registered data sets, sorted."""
    return sorted(_DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    """Look up a data set by name.

    Args:
        name: A registered name such as ``"mnist"`` (see :func:`list_datasets`).

    Returns:
        The data set's :class:`DatasetSpec`.

    Raises:
        ValueError: For an unknown name; the message lists the registered names and the closest
            matches.
    """
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        pass
    known = list_datasets()
    close = difflib.get_close_matches(str(name).lower(), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    raise ValueError(
        f"unknown dataset {shown}.{hint} Registered datasets: {', '.join(known)}; or give the path "
        "of an image folder or a .npz/.pt/.safetensors file (e.g. ./my_images)"
    )
