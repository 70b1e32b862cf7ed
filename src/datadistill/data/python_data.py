"""Data held in Python (``(x, y)``, a torch ``Dataset``, a Hugging Face ``Dataset``); rules in :mod:`datadistill.data.sources`."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datadistill.data.arrays import (
    ARRAY_KEYS,
    DEFAULT_TEST_FRACTION,
    _as_numpy,
    _check_lengths,
    _from_arrays,
    _labels,
    _pixels,
    _split,
    check_test_fraction,
    finish_split,
)
from datadistill.data.folders import _pil_to_tensor
from datadistill.data.loading import (
    ImageDataset,
    _check_pad,
    _convert_channels,
    _parse_size,
    _resize,
    check_channels,
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
    check_channels(channels)
    check_test_fraction(test_fraction)
    train_x, train_y = _from_object(train, "train=")
    if test is None:
        fraction = test_fraction or DEFAULT_TEST_FRACTION
        train_x, train_y, test_x, test_y = _split(train_x, train_y, fraction, "train=")
    else:
        if test_fraction is not None:
            raise ValueError("test_fraction splits train= when no test= is given; drop one of them")
        test_x, test_y = _from_object(test, "test=")
    given = {"x_train": train_x, "y_train": train_y, "x_test": test_x, "y_test": test_y}
    # converted once, here: the hash and the decoding below read the same NumPy arrays
    arrays = {
        key: _as_numpy(value, f"{'train=' if key.endswith('train') else 'test='} {key[0]}")
        for key, value in given.items()
    }
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
    # converted as --channels converts (1 -> 3 repeats, 3 -> 1 takes the luma); the statistics passed are
    # placeholders of the input's channel count, since the run's own mean and std normalise below
    placeholder = (0.0,) * pixels.shape[1]
    pixels = _convert_channels(pixels, placeholder, placeholder, len(mean))[0]
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
            if _is_pil(image):
                image = _pil_array(image, f"{where} item {i}")
            images.append(_as_numpy(image, f"{where} item {i}"))
            labels.append(int(label))
        if not images:
            raise ValueError(f"{where}: the dataset is empty")
        return _stack(images), np.asarray(labels, dtype=np.int64)
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
    for i, row in enumerate(data):
        image = row[image_col]
        if _is_pil(image):
            image = _pil_array(image, f"{where} row {i}")
        images.append(_as_numpy(image, f"{where} row {i}"))
        labels.append(int(row[label_col]))
    if not images:
        raise ValueError(f"{where} the Hugging Face dataset is empty")
    return _stack(images), np.asarray(labels, dtype=np.int64)


def _is_pil(image: Any) -> bool:
    # duck-typed, so Pillow is only needed by whoever made the images (a tensor has a .mode() method)
    return not isinstance(image, Tensor | np.ndarray) and hasattr(image, "mode")


def _pil_array(image: Any, where: str) -> np.ndarray:
    """``[H, W]`` (gray) or ``[H, W, 3]`` pixels of a PIL image, read as an image folder's are."""
    pixels = _pil_to_tensor(image, where)  # [C, H, W]
    return pixels[0].numpy() if len(pixels) == 1 else pixels.permute(1, 2, 0).numpy()


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """One array of the items' images: if 8-bit and deeper images (floats in [0, 1]) meet, all become
    floats in [0, 1], and if gray and RGB ones meet, all become RGB (as in an image folder)."""
    if len({a.dtype for a in images}) > 1:
        images = [a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a for a in images]
    if len({a.ndim for a in images}) > 1:
        images = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in images]
    return np.stack(images)
