"""Your own data: an image folder, a ``.npz``, a ``.pt`` / ``.safetensors`` file, or tensors in Python.

Every form ends as the same :class:`~datadistill.data.loading.ImageDataset` a registered name gives, so
distillation, evaluation and the baselines cannot tell them apart. The rules, in one place:

- **Image folder** (torchvision's ``ImageFolder`` layout): ``root/train/<class>/*`` and ``root/test/<class>/*``,
  or one tree ``root/<class>/*`` split per class into train and test by ``test_fraction`` (default 0.2) with
  a fixed seed (:data:`SPLIT_SEED`, so runs with different ``--seed`` share one test set). Class names are the
  folder names, sorted; label k is the k-th name. Any file Pillow reads is an image; hidden files (``.*``) are
  skipped and any other file is an error. Images that are all gray (Pillow modes 1, L, LA, I, I;16, F) give
  one channel, otherwise three (RGB; alpha dropped).
- **Arrays** (``.npz``, ``.pt``, ``.safetensors``, or ``(x, y)`` in Python): ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` (without the test pair, the training data is split by ``test_fraction``), optional
  ``class_names``. ``x`` is ``[N, H, W]`` (gray), or ``[N, C, H, W]`` when its second axis is 1 or 3 and its
  last is not, otherwise ``[N, H, W, C]``; C is 1 or 3. Pixels are uint8 (or any integer type) in 0…255, or
  floats in [0, 1]. ``y`` holds integer labels 0…K−1, every class present in the training split.
  ``.pt`` files are read with ``torch.load(weights_only=True)``, so no code in them runs.
- Pixels are converted (``channels``), resized (``resize``, bilinear, antialiased), padded (``pad``) and
  normalised per channel with the mean and std of the training split (measured after conversion and resize,
  before padding, as for the registered sets).
- **Provenance:** ``ImageDataset.source`` holds the resolved path, the format and a SHA-256 of the content
  (of the file, or of a folder's image files with their relative paths), which runs record in their manifest.
  A path that does not exist is looked for, by its last component, in ``data_dir`` (``--data-dir``): that is
  how a run whose data moved is pointed at its new place.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datadistill.data.loading import (
    ImageDataset,
    _check_pad,
    _convert_channels,
    _parse_size,
    _resize,
)

ARRAY_SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
DEFAULT_TEST_FRACTION = (
    0.2  # share of each class held out as test images when a source has no test split
)
SPLIT_SEED = 0  # the train/test split of a source without one never depends on a run's --seed
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
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

    Raises:
        FileNotFoundError: neither exists; the message names both places and the fix.
    """
    given = Path(path).expanduser()
    if given.exists():
        return given.resolve()
    if data_dir is not None:
        moved = Path(data_dir).expanduser() / given.name
        if moved.exists():
            return moved.resolve()
        raise FileNotFoundError(
            f"data {str(path)!r} not found, nor {str(moved)!r}: give the path of an image folder or "
            f".npz/.pt/.safetensors file, or a --data-dir that holds {given.name!r}"
        )
    raise FileNotFoundError(
        f"data {str(path)!r} not found: give the path of an image folder or a .npz/.pt/.safetensors "
        f"file (or a --data-dir that holds {given.name!r})"
    )


@dataclass
class _Decoded:
    """A source read into memory, before conversion and normalisation."""

    train_x: Tensor  # [N, C, H, W] float32 in [0, 1]
    train_y: Tensor  # [N] int64
    test_x: Tensor  # [M, C, H, W] float32 in [0, 1]
    test_y: Tensor  # [M] int64
    class_names: tuple[str, ...]
    source: dict[str, Any]  # path, format, sha256, test_fraction


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
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
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


def check_test_fraction(test_fraction: float | None) -> None:
    """Raise ValueError unless ``test_fraction`` is None or a number strictly between 0 and 1."""
    if test_fraction is None:
        return
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0 < test_fraction < 1
    ):
        raise ValueError(
            f"--test-fraction must be a number between 0 and 1 (e.g. 0.2), got {test_fraction!r}"
        )


def from_python(
    train: Any,
    test: Any,
    *,
    name: str = "python",
    resize: int | tuple[int, int] | None = None,
    pad: int | None = None,
    channels: int | None = None,
    test_fraction: float | None = None,
) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)`` ImageDatasets from data held in Python.

    Args:
        train: ``(x, y)`` tensors or NumPy arrays (layout and pixel rules in the module docstring), a
            ``torch.utils.data.Dataset`` whose items are ``(image, label)`` (image a tensor, array or PIL
            image), or a Hugging Face ``datasets.Dataset`` with an image and a label column.
        test: the same, or None to split ``train`` by ``test_fraction``.
        name: the name runs show for this data.

    Returns:
        Both splits, normalised with the training split's per-channel mean and std; ``source`` holds a hash
        of the pixels and labels.
    """
    size = _parse_size(resize)
    _check_pad(pad)
    check_test_fraction(test_fraction)
    train_x, train_y = _from_object(train, "train=")
    if test is None:
        fraction = test_fraction or DEFAULT_TEST_FRACTION
        train_x, train_y, test_x, test_y = _split(train_x, train_y, fraction, "train=")
    else:
        if test_fraction is not None:
            raise ValueError("test_fraction splits train= when no test= is given; drop one of them")
        test_x, test_y = _from_object(test, "test=")
    arrays = {"x_train": train_x, "y_train": train_y, "x_test": test_x, "y_test": test_y}
    digest = hashlib.sha256()
    for key in ARRAY_KEYS:
        digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    source = {"path": None, "format": "python", "sha256": digest.hexdigest(), "test_fraction": None}
    decoded = _from_arrays(arrays, None, name, source, size)
    return tuple(finish_split(decoded, s, name, size, pad, channels) for s in ("train", "test"))


def test_split_from_python(
    test: Any, *, like: dict[str, Any], resize=None, pad=None, channels=None
) -> ImageDataset:
    """A test split from Python normalised like a run's training data (``like``: its manifest, with
    ``mean``, ``std``, ``num_classes``, ``class_names``), for evaluating a run made from Python data."""
    x, y = _from_object(test, "test=")
    num_classes = int(like["num_classes"])
    labels = _labels(y, "test=", num_classes)
    pixels = _pixels(x, "test=")
    size = _parse_size(resize)
    if size is not None:
        pixels = _resize(pixels, size)
    mean, std = tuple(like["mean"]), tuple(like["std"])
    del channels  # the run's channel count is that of its mean
    pixels = _convert_channels(pixels, mean, std, len(mean))[0]
    if pad:
        pixels = F.pad(pixels, (pad, pad, pad, pad), value=0.0)
    view = lambda v: torch.tensor(v).view(-1, 1, 1)  # noqa: E731
    return ImageDataset(
        images=(pixels - view(mean)) / view(std),
        labels=labels,
        name="python",
        num_classes=num_classes,
        class_names=tuple(like["class_names"]),
        mean=mean,
        std=std,
    )


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


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
        x, y = _as_numpy(arrays["x_train"]), _as_numpy(arrays["y_train"])
        _check_lengths(x, y, f"{where}: x_train/y_train")
        x_tr, y_tr, x_te, y_te = _split(x, y, test_fraction or DEFAULT_TEST_FRACTION, str(where))
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
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{where}: cannot be loaded as plain tensors (it may hold pickled code or objects: {first}); "
            "save a dict of tensors: torch.save({'x_train': x, 'y_train': y, 'x_test': xt, 'y_test': yt}, path)"
        ) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, Tensor) for k, v in loaded.items() if k != "class_names"
    ):
        raise ValueError(
            f"{where}: holds a {type(loaded).__name__}, not a dict of tensors; save "
            "torch.save({'x_train': x, 'y_train': y, 'x_test': xt, 'y_test': yt}, path)"
        )
    return dict(loaded)


def _decode_folder(
    root: Path, size: tuple[int, int] | None, test_fraction: float | None
) -> _Decoded:
    digest = hashlib.sha256()
    has = {s: (root / s).is_dir() for s in ("train", "test")}
    if has["train"] and has["test"]:
        if test_fraction is not None:
            raise ValueError(
                f"{root} has its own train/ and test/ folders; drop --test-fraction (it splits a "
                "single tree of class folders)"
            )
        names = _class_folders(root / "train")
        test_names = _class_folders(root / "test", allow_single=True)
        extra = sorted(set(test_names) - set(names))
        if extra:
            raise ValueError(
                f"{root / 'test'}: class folder(s) {', '.join(extra)} have no counterpart in "
                f"{root / 'train'}; the two must hold the same classes"
            )
        train = _read_images(root / "train", names, digest, "train/")
        test = _read_images(root / "test", test_names, digest, "test/", names.index)
        fraction = None
    else:
        names = _class_folders(root)
        train = _read_images(root, names, digest, "")
        fraction = test_fraction or DEFAULT_TEST_FRACTION
        test = None
    items = train + (test or [])
    shapes = {tuple(img.shape) for _, img, _ in items}
    gray = all(mode in GRAY_MODES for _, _, mode in items)
    channels = 1 if gray else 3
    sizes = {s[-2:] for s in shapes}
    if len(sizes) > 1 and size is None:
        (path_a, img_a), (path_b, img_b) = _two_sizes(items)
        raise ValueError(
            f"{root}: images differ in size ({path_a} is {img_a[1]}x{img_a[0]} pixels wide x high, "
            f"{path_b} is {img_b[1]}x{img_b[0]}); pass --resize N to bring them all to NxN"
        )

    def stack(part):
        tensors = [_to_channels(img, channels) for _, img, _ in part]
        if size is not None:
            tensors = [_resize(t.unsqueeze(0), size)[0] for t in tensors]
        labels = [label for (label, _), _, _ in part]
        return torch.stack(tensors), torch.tensor(labels, dtype=torch.int64)

    train_x, train_y = stack(train)
    if test is None:
        train_x, train_y, test_x, test_y = _split(train_x, train_y, fraction, str(root))
    else:
        test_x, test_y = stack(test)
    source = {
        "path": str(root),
        "format": "folder",
        "sha256": digest.hexdigest(),
        "test_fraction": fraction,
    }
    arrays = {"x_train": train_x, "y_train": train_y, "x_test": test_x, "y_test": test_y}
    return _from_arrays(arrays, names, str(root), source, None)


def _two_sizes(items) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    first = items[0]
    for other in items[1:]:
        if other[1].shape[-2:] != first[1].shape[-2:]:
            return (first[0][1], tuple(first[1].shape[-2:])), (
                other[0][1],
                tuple(other[1].shape[-2:]),
            )
    raise AssertionError("no two sizes differ")  # the caller saw two sizes


def _class_folders(folder: Path, *, allow_single: bool = False) -> list[str]:
    """Sorted class sub-folder names of ``folder`` (hidden ones skipped)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not names:
        raise ValueError(
            f"{folder}: no class sub-folders; put the images in one folder per class "
            "(e.g. cats/, dogs/), or in train/<class>/ and test/<class>/"
        )
    if stray:
        raise ValueError(
            f"{folder}: file {stray[0]} sits beside the class folders; move it into its class "
            "sub-folder or out of the data folder"
        )
    if len(names) < 2 and not allow_single:
        raise ValueError(
            f"{folder}: only one class folder ({names[0]}); distillation needs at least two classes, "
            "one sub-folder each"
        )
    return names


def _read_images(folder: Path, names: list[str], digest, prefix: str, index=None) -> list:
    """``[((label, path), image uint8 [C, H, W], mode)]`` of every image under ``folder/<class>/``."""
    from PIL import Image, UnidentifiedImageError

    items = []
    for label, name in enumerate(names):
        label = index(name) if index is not None else label
        files = sorted(
            p
            for p in (folder / name).rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        if not files:
            raise ValueError(
                f"{folder / name}: class folder holds no images; add images or remove the folder"
            )
        for path in files:
            raw = path.read_bytes()
            digest.update(f"{prefix}{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(hashlib.sha256(raw).digest())
            try:
                with Image.open(io.BytesIO(raw)) as img:
                    mode = img.mode
                    pixels = _pil_to_tensor(img)
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise ValueError(
                    f"{path}: not an image Pillow can read ({type(err).__name__}); remove it or "
                    "move it out of the data folder"
                ) from None
            items.append(((label, str(path)), pixels, mode))
    return items


def _pil_to_tensor(img) -> Tensor:
    """``[C, H, W]`` uint8 (C = 1 for gray modes, else 3) from a PIL image."""
    if img.mode in GRAY_MODES:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            array = np.asarray(img, dtype=np.float64)
            top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
            array = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        else:
            array = np.asarray(img.convert("L"), dtype=np.uint8)
        return torch.from_numpy(array.copy()).unsqueeze(0)
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _to_channels(img: Tensor, channels: int) -> Tensor:
    """uint8 ``[C, H, W]`` -> float ``[channels, H, W]`` in [0, 1] (gray images of an RGB set are repeated)."""
    pixels = img.to(torch.float32) / 255.0
    if pixels.shape[0] == 1 and channels == 3:
        pixels = pixels.expand(3, -1, -1).contiguous()
    return pixels


# ---------------------------------------------------------------------------------------------------------
# Arrays -> checked tensors
# ---------------------------------------------------------------------------------------------------------


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _check_lengths(x, y, where: str) -> None:
    if len(x) != len(y):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels; give one label per image")


def _pixels(x: Any, where: str) -> Tensor:
    """``[N, C, H, W]`` float32 in [0, 1] from uint8/integer 0…255 or float [0, 1] pixels in any layout."""
    array = _as_numpy(x)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if not (array.shape[1] in (1, 3) and array.shape[3] not in (1, 3)):
            array = array.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    else:
        raise ValueError(
            f"{where}: images of shape {array.shape}; need [N, H, W], [N, C, H, W] or [N, H, W, C]"
        )
    if array.shape[1] not in (1, 3):
        raise ValueError(
            f"{where}: images of shape {array.shape} (read as N, C, H, W) have {array.shape[1]} "
            "channels; give 1 (gray) or 3 (RGB) channels, e.g. drop the alpha channel"
        )
    if len(array) == 0:
        raise ValueError(f"{where}: holds no images")
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).to(torch.float32) / 255.0
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{where}: integer pixels range over {low}…{high}; they must lie in 0…255"
            )
        return torch.from_numpy(np.ascontiguousarray(array).astype(np.float32)) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32))
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{where}: pixels hold NaN or inf values")
        low, high = float(tensor.min()), float(tensor.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"{where}: float pixels range over [{low:.3g}, {high:.3g}]; they must lie in [0, 1] "
                "(divide by 255, or pass uint8; give raw pixels, not normalised ones)"
            )
        return tensor.clamp_(0.0, 1.0)
    raise ValueError(f"{where}: pixels of type {array.dtype}; give uint8 or float arrays")


def _labels(y: Any, where: str, num_classes: int | None = None) -> Tensor:
    array = _as_numpy(y)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(
            f"{where}: labels of shape {array.shape} and type {array.dtype}; give a 1-D integer "
            "array of class indices 0…K-1"
        )
    labels = torch.from_numpy(array.astype(np.int64))
    if (
        num_classes is not None
        and len(labels)
        and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise ValueError(
            f"{where}: labels range over {int(labels.min())}…{int(labels.max())} but the training "
            f"data has {num_classes} classes (0…{num_classes - 1}); relabel them to 0…K-1"
        )
    return labels


def _from_object(data: Any, where: str) -> tuple[Any, Any]:
    """``(x, y)`` arrays from an ``(x, y)`` pair or a map-style ``torch.utils.data.Dataset``."""
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        _check_lengths(x, y, where)
        return x, y
    if hasattr(data, "column_names") and hasattr(data, "features"):
        return _from_hugging_face(data, where)
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        images, labels = [], []
        for i in range(len(data)):
            item = data[i]
            if not (isinstance(item, tuple | list) and len(item) >= 2):
                raise ValueError(
                    f"{where}: dataset item {i} is a {type(item).__name__}; items must be (image, label)"
                )
            image, label = item[0], item[1]
            if not isinstance(image, Tensor | np.ndarray):
                image = np.asarray(
                    image.convert("RGB") if image.mode not in GRAY_MODES else image.convert("L")
                )
            images.append(_as_numpy(image))
            labels.append(int(label))
        if not images:
            raise ValueError(f"{where}: the dataset is empty")
        return np.stack(images), np.asarray(labels, dtype=np.int64)
    raise ValueError(
        f"{where} got a {type(data).__name__}; give (images, labels) tensors or arrays, or a "
        "torch.utils.data.Dataset of (image, label) items"
    )


def _from_hugging_face(data: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a Hugging Face ``datasets.Dataset`` with an image and a label column.

    Duck-typed (``column_names``, ``features``), so the ``datasets`` package (extra ``[hf]``) is only
    needed by whoever builds the object. Columns: the first of image/img/pixel_values/x and of
    label/labels/y; images are PIL images or arrays.
    """
    columns = list(data.column_names)
    image_col = next((c for c in ("image", "img", "pixel_values", "x") if c in columns), None)
    label_col = next((c for c in ("label", "labels", "y") if c in columns), None)
    if image_col is None or label_col is None:
        raise ValueError(
            f"{where} Hugging Face dataset has columns {', '.join(columns)}; it needs an image column "
            "(image, img, pixel_values or x) and a label column (label, labels or y): rename them "
            "with dataset.rename_column"
        )
    images, labels = [], []
    for row in data:
        image = row[image_col]
        if hasattr(image, "mode"):  # a PIL image
            image = image.convert("L" if image.mode in GRAY_MODES else "RGB")
        images.append(_as_numpy(image))
        labels.append(int(row[label_col]))
    if not images:
        raise ValueError(f"{where} the Hugging Face dataset is empty")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _split(x, y, fraction: float, where: str):
    """Per-class split: ``round(fraction · n_c)`` images of class c to test (at least one stays in train)."""
    x, y = torch.as_tensor(_as_numpy(x)), torch.as_tensor(_as_numpy(y))
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = min(round(fraction * len(members)), len(members) - 1)
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    test_idx, train_idx = torch.cat(test_idx).sort().values, torch.cat(train_idx).sort().values
    if len(test_idx) == 0:
        raise ValueError(
            f"{where}: {len(y)} images are too few to hold out a test set with --test-fraction "
            f"{fraction}; add images, raise --test-fraction, or give a separate test split"
        )
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _from_arrays(
    arrays: dict[str, Any], names: Any, where: str, source: dict[str, Any], size
) -> _Decoded:
    """Check and convert the four arrays; labels must be 0…K-1 with every class in the training split."""
    for part in ("train", "test"):
        _check_lengths(arrays[f"x_{part}"], arrays[f"y_{part}"], f"{where}: x_{part}/y_{part}")
    train_y = _labels(arrays["y_train"], f"{where}: y_train")
    if len(train_y) == 0:
        raise ValueError(f"{where}: the training split holds no images")
    if train_y.min() < 0:
        raise ValueError(
            f"{where}: y_train holds label {int(train_y.min())}; labels must be class indices 0…K-1"
        )
    num_classes = int(train_y.max()) + 1
    absent = sorted(set(range(num_classes)) - set(train_y.unique().tolist()))
    if absent:
        raise ValueError(
            f"{where}: y_train has no images of class(es) {', '.join(map(str, absent[:5]))} "
            f"(labels run to {num_classes - 1}); relabel the classes to 0…K-1 without gaps"
        )
    if num_classes < 2:
        raise ValueError(
            f"{where}: all training labels are {int(train_y[0])}; distillation needs at least two classes"
        )
    test_y = _labels(arrays["y_test"], f"{where}: y_test", num_classes)
    train_x = _pixels(arrays["x_train"], f"{where}: x_train")
    test_x = _pixels(arrays["x_test"], f"{where}: x_test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(
            f"{where}: x_train images are {tuple(train_x.shape[1:])} but x_test images are "
            f"{tuple(test_x.shape[1:])} (C, H, W); give both splits one shape"
        )
    if size is not None:
        train_x, test_x = _resize(train_x, size), _resize(test_x, size)
    class_names = _class_names(names, num_classes, where)
    return _Decoded(train_x, train_y, test_x, test_y, class_names, source)


def _class_names(names: Any, num_classes: int, where: str) -> tuple[str, ...]:
    if names is None:
        return tuple(str(k) for k in range(num_classes))
    if isinstance(names, Tensor) or isinstance(names, np.ndarray) and names.dtype.kind not in "US":
        raise ValueError(f"{where}: class_names must be strings, got {type(names).__name__}")
    listed = tuple(str(n) for n in (names.tolist() if isinstance(names, np.ndarray) else names))
    if len(listed) != num_classes:
        raise ValueError(
            f"{where}: {len(listed)} class_names for {num_classes} classes (labels 0…{num_classes - 1})"
        )
    return listed


def finish_split(
    decoded: _Decoded,
    split: str,
    name: str,
    size: tuple[int, int] | None,
    pad: int | None,
    channels: int | None,
) -> ImageDataset:
    """Convert channels, pad and normalise one split with the training split's per-channel statistics."""
    del size  # applied when decoding (a folder of mixed sizes must be resized image by image)
    train_x = decoded.train_x
    target = channels or train_x.shape[1]
    stats_of = _convert_channels(
        train_x, (0.0,) * train_x.shape[1], (1.0,) * train_x.shape[1], target
    )[0]
    mean = tuple(float(v) for v in stats_of.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in stats_of.std(dim=(0, 2, 3), correction=0))
    if min(std) < 1e-6:
        raise ValueError(
            f"{decoded.source.get('path') or name}: every training pixel has the same value in a "
            "channel, so there is nothing to learn; check the images"
        )
    pixels = decoded.train_x if split == "train" else decoded.test_x
    labels = decoded.train_y if split == "train" else decoded.test_y
    pixels = _convert_channels(pixels, (0.0,) * pixels.shape[1], (1.0,) * pixels.shape[1], target)[
        0
    ]
    if pad:
        pixels = F.pad(pixels, (pad, pad, pad, pad), value=0.0)
    view = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return ImageDataset(
        images=(pixels - view[0]) / view[1],
        labels=labels.clone(),
        name=name,
        num_classes=len(decoded.class_names),
        class_names=decoded.class_names,
        mean=mean,
        std=std,
        source=dict(decoded.source),
    )


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
