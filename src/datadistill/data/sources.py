"""Your own data: an image folder, a ``.npz``, a ``.pt`` / ``.safetensors`` file, or tensors in Python.

Every form ends as the same :class:`~datadistill.data.loading.ImageDataset` a registered name gives, so
distillation, evaluation and the baselines cannot tell them apart. The rules, in one place:

- **Image folder** (torchvision's ``ImageFolder`` layout): ``root/train/<class>/*`` and ``root/test/<class>/*``
  (split folder names in any case: ``Train/``, ``TEST/``; ``training/`` and ``testing/`` too), or one tree
  ``root/<class>/*`` split per class into train and test by ``test_fraction`` (default 0.2) with a fixed
  seed (:data:`SPLIT_SEED`, so runs with different ``--seed`` share one test set); ``train/<class>/``
  without ``test/`` (e.g. beside ``val/``) is refused, not read as classes, and so is a class the split
  would leave without test images. Class names are the folder names, sorted; label k is the k-th name. Any
  file Pillow reads is an image; hidden files (``.*``) are skipped and any other file is an error. Images
  that are all gray (Pillow modes 1, L, LA, I, I;16, F, and palette images whose colours are all grays)
  give one channel, otherwise three (RGB; alpha dropped). Pixels are scaled by the file's bit depth, the
  same for every image: 8-bit / 255, 16-bit / 65535, float (mode F) kept as it is and refused outside
  [0, 1]; 32-bit integer images are refused.
- **Arrays** (``.npz``, ``.pt``, ``.safetensors``, or ``(x, y)`` in Python): ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` (without the test pair, the training data is split by ``test_fraction``), optional
  ``class_names``. ``x`` is ``[N, H, W]`` (gray), or ``[N, C, H, W]`` when its second axis is 1 or 3 and its
  last is not, otherwise ``[N, H, W, C]``; C is 1 or 3. Pixels are uint8 (or any integer type) in 0…255, or
  floats in [0, 1] (half-precision ones are read as float32); tensors must be dense. ``y`` holds integer
  labels 0…K−1, every class present in the training split.
  ``.pt`` files are read with ``torch.load(weights_only=True)``, so no code in them runs.
- Pixels are converted (``channels``), resized (``resize``, bilinear, antialiased), padded (``pad``) and
  normalised per channel with the mean and std of the training split (measured after conversion and resize,
  before padding, as for the registered sets).
- **Provenance:** ``ImageDataset.source`` holds the resolved path, the format and a SHA-256 of the content
  (of the file, or of a folder's image files with their relative paths), which runs record in their manifest.
  An absolute path that does not exist (runs record absolute paths) is looked for, by its last component,
  in ``data_dir`` (``--data-dir``): that is how a run whose data moved is pointed at its new place. A
  relative path is read as given, never replaced by a file of the same name in ``data_dir``.

This module finds a source and reads array files; ``folders`` reads image folders, ``python_data`` data held in
Python, and ``arrays`` turns arrays of any of them into an ``ImageDataset``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from datadistill.data.arrays import (
    ARRAY_KEYS,
    DEFAULT_TEST_FRACTION,
    SPLIT_SEED,
    _as_numpy,
    _check_lengths,
    _Decoded,
    _from_arrays,
    _split,
    check_test_fraction,
    finish_split,
)
from datadistill.data.folders import _decode_folder
from datadistill.data.loading import (
    ImageDataset,
    _check_pad,
    _parse_size,
    check_channels,
)
from datadistill.data.python_data import from_python, test_split_from_python

ARRAY_SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")
_CACHE_SIZE = 2  # decoded sources kept in memory (train and test are loaded one after the other)
_cache: dict[tuple, _Decoded] = {}


def looks_like_path(name: Any) -> bool:
    """True when ``name`` should be read as a path rather than a registered data set name."""
    if isinstance(name, os.PathLike):
        return True
    if not isinstance(name, str):
        return False
    return (
        Path(name).expanduser().exists()
        or os.sep in name
        or "/" in name
        or name.startswith((".", "~"))
        or name.lower().endswith(ARRAY_SUFFIXES)
    )


def resolve_source(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """The absolute path of a data source: ``path`` itself, else ``data_dir / <its last component>``.

    Only an absolute ``path`` (as runs record their data) is looked for in ``data_dir``: a relative one
    is what the user typed, and reading a file of the same name elsewhere would train on data they
    did not name.

    Raises:
        FileNotFoundError: not found; the message names the places looked in and the fix.
    """
    given = Path(path).expanduser()
    if given.exists():
        return given.resolve()
    if data_dir is not None and Path(path).is_absolute():
        moved = Path(data_dir).expanduser() / given.name
        if moved.exists():
            return moved.resolve()
        raise FileNotFoundError(
            f"data {str(path)!r} not found, nor {str(moved)!r}: give the path of an image folder or "
            f".npz/.pt/.safetensors file, or a --data-dir that holds {given.name!r}"
        )
    nearby = Path(data_dir).expanduser() / given.name if data_dir is not None else None
    if nearby is not None and nearby.exists():
        raise FileNotFoundError(
            f"data {str(path)!r} not found (a path is read as given, not looked for in --data-dir); "
            f"to use {str(nearby)!r}, pass that path"
        )
    raise FileNotFoundError(
        f"data {str(path)!r} not found: give the path of an image folder or a .npz/.pt/.safetensors "
        "file"
    )


def load_source(
    path: str | os.PathLike,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    resize: int | tuple[int, int] | None = None,
    pad: int | None = None,
    channels: int | None = None,
    test_fraction: float | None = None,
) -> ImageDataset:
    """Load one split of a data source on disk (see the module docstring for the forms and rules).

    Args:
        path: an image folder, or a ``.npz`` / ``.pt`` / ``.pth`` / ``.safetensors`` file.
        split: ``"train"`` or ``"test"``.
        data_dir: where to look for ``path``'s last component when ``path`` does not exist.
        resize, pad, channels: as in :func:`~datadistill.data.load_dataset`.
        test_fraction: share of each class held out for testing when the source has no test split
            (default 0.2); an error for a source that has one.

    Returns:
        An :class:`ImageDataset` (images ``[N, C, H, W]`` normalised with the training split's per-channel
        mean and std) whose ``source`` records the path, format and content hash.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r} for {str(path)!r}; choose 'train' or 'test'")
    size = _parse_size(resize)
    _check_pad(pad)
    check_channels(channels)
    check_test_fraction(test_fraction)
    where = resolve_source(path, data_dir)
    key = (str(where), _signature(where), size, test_fraction)
    decoded = _cache.get(key)
    if decoded is None:
        decoded = _decode(where, size, test_fraction)
        while len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = decoded
    return finish_split(decoded, split, where.stem or where.name, size, pad, channels)


def _signature(where: Path) -> tuple:
    """What changes when the source changes (sizes and modification times), to key the in-memory cache."""
    if where.is_file():
        stat = where.stat()
        return (stat.st_size, stat.st_mtime_ns)
    entries = []
    for file in sorted(p for p in where.rglob("*") if p.is_file()):
        stat = file.stat()
        entries.append((str(file.relative_to(where)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def _decode(where: Path, size: tuple[int, int] | None, test_fraction: float | None) -> _Decoded:
    if where.is_dir():
        return _decode_folder(where, size, test_fraction)
    suffix = where.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise ValueError(
            f"{where}: not an image folder or a {'/'.join(ARRAY_SUFFIXES)} file; save the arrays "
            "x_train, y_train, x_test, y_test as .npz (numpy.savez) or use a folder of class sub-folders"
        )
    arrays = _read_arrays(where, suffix)
    digest = hashlib.sha256()
    with where.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    fmt = "pt" if suffix in (".pt", ".pth") else suffix[1:]
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    has_test = [k in arrays for k in ("x_test", "y_test")]
    if missing or any(has_test) and not all(has_test):
        absent = missing + [k for k, h in zip(("x_test", "y_test"), has_test, strict=True) if not h]
        raise ValueError(
            f"{where}: missing {', '.join(absent)}; it needs x_train, y_train (and x_test, y_test, "
            f"else --test-fraction of the training data is held out); found {', '.join(arrays) or 'nothing'}"
        )
    names = arrays.pop("class_names", None)
    if all(has_test):
        if test_fraction is not None:
            raise ValueError(
                f"{where} has its own x_test/y_test; drop --test-fraction (it splits sources without one)"
            )
    else:
        x = _as_numpy(arrays["x_train"], f"{where}: x_train")
        y = _as_numpy(arrays["y_train"], f"{where}: y_train")
        _check_lengths(x, y, f"{where}: x_train/y_train")
        fraction = test_fraction or DEFAULT_TEST_FRACTION
        x_tr, y_tr, x_te, y_te = _split(x, y, fraction, str(where), names)
        arrays.update(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    source = {
        "path": str(where),
        "format": fmt,
        "sha256": digest.hexdigest(),
        "test_fraction": None if all(has_test) else (test_fraction or DEFAULT_TEST_FRACTION),
    }
    return _from_arrays(arrays, names, str(where), source, size)


def _read_arrays(where: Path, suffix: str) -> dict[str, Any]:
    if suffix == ".npz":
        # np.load reads a non-zip file as a .npy or a pickle: a renamed .npy would come back as an array and
        # any other bytes would be blamed on pickling, so say what the file is not instead.
        if not zipfile.is_zipfile(where):
            raise ValueError(
                f"{where}: not a .npz archive (a .npz is a zip of named arrays); save it with "
                "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
            )
        try:
            with np.load(where, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except ValueError as err:  # object arrays need pickle, which we refuse
            raise ValueError(
                f"{where}: holds pickled Python objects ({err}); save plain numeric arrays with "
                "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
            ) from None
        except (OSError, EOFError) as err:
            raise ValueError(
                f"{where}: not a readable .npz file ({err}); re-save it with numpy.savez"
            ) from None
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(where))
        except (SafetensorError, OSError) as err:
            raise ValueError(
                f"{where}: not a readable .safetensors file ({err}); re-save it with "
                "safetensors.torch.save_file({'x_train': ..., ...}, path)"
            ) from None
    try:
        loaded = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the unpickler raises many types; all mean "not plain tensors"
        raise ValueError(_pt_error(where, err)) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, Tensor) for k, v in loaded.items() if k != "class_names"
    ):
        raise ValueError(
            f"{where}: holds a {type(loaded).__name__}, not a dict of tensors; save "
            "torch.save({'x_train': x, 'y_train': y, 'x_test': xt, 'y_test': yt}, path)"
        )
    return dict(loaded)


def _pt_error(where: Path, err: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused ``where``: torch's own text spans
    lines, carries terminal colour codes and advises loading unsafely."""
    save = "save a dict of tensors: torch.save({'x_train': x, 'y_train': y, 'x_test': xt, 'y_test': yt}, path)"
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if refused and refused.group(1).startswith("numpy"):
        return (
            f"{where}: holds NumPy arrays, which a safe torch.load refuses; convert them with "
            "torch.from_numpy(x) before torch.save, or save the arrays as .npz with numpy.savez"
        )
    if refused:
        return (
            f"{where}: cannot be loaded as plain tensors: it holds pickled Python objects "
            f"({refused.group(1)}), which are never unpickled; {save}"
        )
    with where.open("rb") as f:
        head = f.read(2)
    if (
        not zipfile.is_zipfile(where) and head[:1] != b"\x80"
    ):  # neither torch.save's zip nor a pickle
        return f"{where}: not a file torch.save wrote (neither a zip archive nor a pickle); {save}"
    first = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    cause = f"{type(err).__name__}: {first[0]}" if first else type(err).__name__
    return f"{where}: cannot be loaded as plain tensors ({cause}); {save}"


def describe_source(source: dict[str, Any] | None) -> str:
    """A short human description of a recorded source, for messages: ``path (sha256 0123abcd…)``."""
    if not source:
        return "(unknown)"
    return f"{source.get('path')} (sha256 {str(source.get('sha256'))[:16]}…)"


__all__: Sequence[str] = (
    "ARRAY_KEYS",
    "DEFAULT_TEST_FRACTION",
    "SPLIT_SEED",
    "check_test_fraction",
    "from_python",
    "load_source",
    "looks_like_path",
    "resolve_source",
    "test_split_from_python",
)
