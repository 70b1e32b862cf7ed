"""Readers: turn a data set's files (already verified by the loader) into tensors.

Every reader has the signature ``reader(folder, split) -> (images, labels)`` with images
``[N, C, H, W]`` (uint8 in [0, 255], or float32 already in [0, 1]) and labels ``[N]`` int64.
Readers do no normalisation and no resizing; :func:`datadistill.data.load_dataset` does that once
for all data sets.
"""

from __future__ import annotations

import bz2
import gzip
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# IDX type codes (third magic byte) -> numpy dtype. The big-endian multi-byte types are listed for
# completeness; MNIST and Fashion-MNIST only use unsigned bytes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_PREFIX = {"train": "train", "test": "t10k"}  # LeCun's naming of the two splits


def _check_split(split: str, allowed: tuple[str, ...] = ("train", "test")) -> None:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(allowed)}")


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into an array, checking its header.

    The header is: two zero bytes, a type code, the number of dimensions ``d``, then ``d``
    big-endian uint32 sizes. For MNIST images that is magic 2051 (0x00000803) and sizes
    (N, 28, 28); for labels, magic 2049 (0x00000801) and (N,).

    Args:
        path: A ``*-ubyte`` or ``*-ubyte.gz`` file.

    Returns:
        An array with the header's shape and type.

    Raises:
        ValueError: If the magic number is wrong or the payload size disagrees with the header.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise ValueError(
            f"{path} is not an IDX file (magic number {magic}; expected 2051 for images or "
            f"2049 for labels). Replace it with the canonical file."
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    offset = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path}: header promises shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - offset}; the file is truncated or corrupt. Replace it."
        )
    # .copy(): frombuffer over bytes is read-only, and torch wants writable memory.
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).copy()


def _read_mnist_like(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Read MNIST or Fashion-MNIST from the four canonical ``*-ubyte.gz`` files.

    Returns:
        images ``[N, 1, 28, 28]`` uint8 and labels ``[N]`` int64.
    """
    _check_split(split)
    prefix = _MNIST_PREFIX[split]
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")  # [N, H, W]
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")  # [N]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{folder}: {split} images have shape {images.shape} and labels {labels.shape}; "
            f"expected [N, H, W] and [N] with the same N. The files do not belong together."
        )
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _read_usps_esl(path: Path) -> tuple[Tensor, Tensor]:
    """ESL "ZIP code" text: per line the digit, then 256 gray values in [-1, 1] (16x16)."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, dtype=np.float32, ndmin=2)  # [N, 257]; C parser, ~0.5 s for train
    if table.shape[1] != 257:
        raise ValueError(f"{path}: rows have {table.shape[1]} values, expected 257 (label + 16x16)")
    labels = table[:, 0].astype(np.int64)
    if not np.array_equal(labels, table[:, 0]) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: first column must hold the digits 0-9")
    pixels = (table[:, 1:] + 1.0) / 2.0  # [-1, 1] -> [0, 1]
    images = np.clip(pixels, 0.0, 1.0).reshape(-1, 1, 16, 16)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def _read_usps_libsvm(path: Path) -> tuple[Tensor, Tensor]:
    """LIBSVM copy of USPS: ``label idx:value ...`` with labels 1-10 (digit + 1), values in [-1, 1].

    LIBSVM's sparse format may omit zero values, so absent indices are 0 in [-1, 1] units.
    """
    images, labels = [], []
    with bz2.open(path, "rt") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            row = np.zeros(256, dtype=np.float32)
            try:
                label = int(float(parts[0])) - 1
                for item in parts[1:]:
                    index, value = item.split(":")
                    row[int(index) - 1] = float(value)
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}, line {line_no}: not in LIBSVM format ({e})") from e
            if not 0 <= label <= 9:
                raise ValueError(f"{path}, line {line_no}: label {label + 1} outside 1-10")
            images.append(row)
            labels.append(label)
    pixels = (np.stack(images) + 1.0) / 2.0
    images_np = np.clip(pixels, 0.0, 1.0).reshape(-1, 1, 16, 16)
    return torch.from_numpy(images_np), torch.tensor(labels, dtype=torch.int64)


def _read_usps(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Read USPS from the ESL files (``zip.train.gz``), else the LIBSVM ones (``usps.bz2``).

    The preference order matches the loader's: primary files first, alternatives otherwise.

    Returns:
        images ``[N, 1, 16, 16]`` float32 in [0, 1] (pixel = (v + 1) / 2) and labels ``[N]`` int64.
    """
    _check_split(split)
    esl = folder / ("zip.train.gz" if split == "train" else "zip.test.gz")
    if esl.is_file():
        return _read_usps_esl(esl)
    return _read_usps_libsvm(folder / ("usps.bz2" if split == "train" else "usps.t.bz2"))


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build plain containers and numpy arrays and nothing else.

    Defence in depth for CIFAR-10's pickled batches: even a file that somehow passed the checksum
    cannot make us import and call arbitrary code.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # arrays pickled by numpy < 2 (CIFAR's)
            ("numpy._core.multiarray", "_reconstruct"),  # arrays pickled by numpy >= 2
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists"
        )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64."""
    # CIFAR-10's python release *is* a set of pickles, so here we must unpickle. The project rule
    # "loading never unpickles" is about our own artifacts; for these files the loader has already
    # matched the canonical checksums before calling the reader, and the restricted unpickler above
    # refuses anything but arrays. encoding="bytes" because the batches were written by Python 2.
    with open(path, "rb") as f:
        batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data', b'labels')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(
            f"{path}: b'data' has shape {data.shape} for {len(labels)} labels; expected [N, 3072]"
        )
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar10(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Read CIFAR-10's python batches (train: ``data_batch_1..5``, test: ``test_batch``).

    Returns:
        images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64.
    """
    _check_split(split)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batches = [_read_cifar_batch(folder / "cifar-10-batches-py" / name) for name in names]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return torch.from_numpy(images), torch.from_numpy(labels)


def _read_svhn(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Read SVHN (cropped digits) from ``train_32x32.mat`` / ``test_32x32.mat``.

    The .mat files hold ``X`` as ``[32, 32, 3, N]`` uint8 and ``y`` as ``[N, 1]`` in 1..10, where
    10 stands for the digit 0; labels are mapped to 0-9.

    Returns:
        images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64.
    """
    from scipy.io import loadmat  # scipy is slow to import; only SVHN needs it

    _check_split(split)
    path = folder / f"{split}_32x32.mat"
    mat = loadmat(path, variable_names=["X", "y"])
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables X and y (the SVHN cropped-digits format)")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(f"{path}: X has shape {x.shape} for {len(y)} labels; expected [32,32,3,N]")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must lie in 1..10 (10 = digit 0)")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)  # [H,W,C,N] -> [N,C,H,W]
    labels = (y.astype(np.int64) % 10).copy()  # 10 -> 0, 1..9 unchanged
    return torch.from_numpy(images), torch.from_numpy(labels)


_DIGITS_TRAIN_SIZE = 1437  # first 80% of sklearn's 1,797 digits; the last 360 are the test split


def _read_digits(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """Read scikit-learn's embedded 8x8 digits (no files; `folder` is ignored).

    The split is fixed and needs no random state: the first 1,437 images train, the last 360
    test. Classes cycle through the file, so both parts are near-balanced (train 141-146 images
    per class, test 33-37).

    Returns:
        images ``[N, 1, 8, 8]`` float32 in [0, 1] (raw values 0..16 divided by 16) and labels.
    """
    from sklearn.datasets import load_digits  # sklearn is slow to import; only digits needs it

    _check_split(split)
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # [1797, 8, 8]
    labels = digits.target.astype(np.int64)
    part = slice(None, _DIGITS_TRAIN_SIZE) if split == "train" else slice(_DIGITS_TRAIN_SIZE, None)
    return torch.from_numpy(images[part, None].copy()), torch.from_numpy(labels[part].copy())
