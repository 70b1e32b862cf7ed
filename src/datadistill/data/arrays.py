"""Arrays into an ``ImageDataset``: pixel and label rules, the seeded train/test split, per-channel normalisation.

The rules are in :mod:`datadistill.data.sources`; image folders and Python objects end here as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datadistill.data.loading import (
    ImageDataset,
    _convert_channels,
    _resize,
    check_converted_size,
)

DEFAULT_TEST_FRACTION = (
    0.2  # share of each class held out as test images when a source has no test split
)


SPLIT_SEED = 0  # the train/test split of a source without one never depends on a run's --seed


ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class _Decoded:
    """A source read into memory, before conversion and normalisation."""

    train_x: Tensor  # [N, C, H, W] float32 in [0, 1]
    train_y: Tensor  # [N] int64
    test_x: Tensor  # [M, C, H, W] float32 in [0, 1]
    test_y: Tensor  # [M] int64
    class_names: tuple[str, ...]
    source: dict[str, Any]  # path, format, sha256, test_fraction


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


def _as_numpy(value: Any, where: str = "data") -> np.ndarray:
    """A NumPy array of ``value``; half-precision tensors become float32, which NumPy can hold."""
    if isinstance(value, Tensor):
        if value.layout != torch.strided:
            raise ValueError(
                f"{where}: a {str(value.layout).removeprefix('torch.')} tensor; give a dense one "
                "(x.to_dense())"
            )
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()  # exact: float32 holds every half-precision value
        try:
            return value.numpy()
        except TypeError:  # a dtype NumPy lacks (e.g. torch.uint16 on older NumPy bridges)
            raise ValueError(
                f"{where}: a tensor of type {str(value.dtype).removeprefix('torch.')}; give uint8 "
                "or float32 tensors"
            ) from None
    return np.asarray(value)


def _check_lengths(x, y, where: str) -> None:
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    if len(shape) not in (3, 4):  # checked first: a flattened x would be blamed on its labels
        raise ValueError(
            f"{where}: images of shape {shape} ({len(shape)}-D); give x as [N, H, W], [N, C, H, W] "
            "or [N, H, W, C]"
        )
    if len(x) != len(y):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels; give one label per image")


def _pixels(x: Any, where: str) -> Tensor:
    """``[N, C, H, W]`` float32 in [0, 1] from uint8/integer 0…255 or float [0, 1] pixels in any layout."""
    array = _as_numpy(x, where)
    given, layout = array.shape, "N, C, H, W"  # as the user gave them, for the messages
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if not (array.shape[1] in (1, 3) and array.shape[3] not in (1, 3)):
            array, layout = array.transpose(0, 3, 1, 2), "N, H, W, C"  # NHWC -> NCHW
    else:
        raise ValueError(
            f"{where}: images of shape {array.shape}; need [N, H, W], [N, C, H, W] or [N, H, W, C]"
        )
    if array.shape[1] not in (1, 3):
        raise ValueError(
            f"{where}: images of shape {given} (read as {layout}) have {array.shape[1]} "
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
                f"{where}: integer pixels range over {low}…{high}, but integer pixels are read as "
                "8-bit (0…255); give floats in [0, 1] (e.g. x / 65535 for 16-bit, x / 4095 for 12-bit "
                "data) or uint8"
            )
        return torch.from_numpy(np.ascontiguousarray(array).astype(np.float32)) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32))
        finite = torch.isfinite(tensor)
        if not finite.all():
            first = int((~finite).flatten(1).any(1).nonzero()[0])
            raise ValueError(
                f"{where}: pixels hold NaN or inf values ({int((~finite).sum())} of them, the first in "
                f"image {first}); replace them (e.g. numpy.nan_to_num) or drop those images"
            )
        low, high = float(tensor.min()), float(tensor.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"{where}: float pixels range over [{low:.3g}, {high:.3g}]; they must lie in [0, 1] "
                "(divide by 255, or pass uint8; give raw pixels, not normalised ones)"
            )
        return tensor.clamp_(0.0, 1.0)
    raise ValueError(f"{where}: pixels of type {array.dtype}; give uint8 or float arrays")


def _labels(y: Any, where: str, num_classes: int | None = None) -> Tensor:
    array = _as_numpy(y, where)
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


def _split(x, y, fraction: float, where: str, names: Any = None):
    """Per-class split: ``round(fraction · n_c)`` images of class c to test (at least one stays in train).

    A class that would get no test image is refused (named from ``names`` when given), as a test split
    missing a class is: the test accuracy would leave it out.
    """
    x, y = torch.as_tensor(_as_numpy(x, where)), torch.as_tensor(_as_numpy(y, where))
    if len(y) == 0:
        return x, y, x, y  # _from_arrays says the training split holds no images
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = min(round(fraction * len(members)), len(members) - 1)
        if n_test == 0:
            label = _name_of(c, names)
            raise ValueError(
                f"{where}: class {label} has {len(members)} image(s), too few to hold out a test "
                f"image with --test-fraction {fraction}, so the test accuracy would leave it out; add "
                "images of it, or give a separate test split (test/<class>/ folders, x_test/y_test)"
            )
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    test_idx, train_idx = torch.cat(test_idx).sort().values, torch.cat(train_idx).sort().values
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _name_of(label: Any, names: Any) -> Any:
    """The class name of ``label`` for messages, when ``names`` is a usable list of them."""
    listed = names.tolist() if isinstance(names, np.ndarray) and names.dtype.kind in "US" else names
    if isinstance(listed, list | tuple) and isinstance(label, int) and 0 <= label < len(listed):
        return listed[label]
    return label


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
        _, c, h, w = pixels.shape
        check_converted_size(f"{name} {split}", len(pixels), (c, h + 2 * pad, w + 2 * pad), 4)
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
