"""Tests for datadistill.data: registry, readers, the loader's transforms, and real data.

Real-data tests read $DATADISTILL_DATA (run as ``DATADISTILL_DATA=../shared/datasets pytest``) and
skip with the reason when it is unset or lacks the files. CIFAR-10 and SVHN are not available
offline, so their readers are tested on tiny files written in the exact on-disk formats.
"""

from __future__ import annotations

import bz2
import dataclasses
import datetime
import gzip
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from datadistill.data import (
    DatasetSpec,
    FileSpec,
    ImageDataset,
    dataset_status,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    normalize_pixels,
    readers,
    register_dataset,
)
from datadistill.data.readers import _read_cifar_batch, _read_idx
from datadistill.data.registry import _unregister_dataset

BUILTIN = ["cifar10", "digits", "fashion-mnist", "mnist", "svhn", "usps"]


# ----------------------------------------------------------------------------- helpers / fixtures


@pytest.fixture
def register():
    """Register throw-away specs for one test and remove them afterwards."""
    names = []

    def _register(spec: DatasetSpec) -> DatasetSpec:
        register_dataset(spec)
        names.append(spec.name)
        return spec

    yield _register
    for name in names:
        _unregister_dataset(name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pinned(spec_files, folder: Path) -> tuple[FileSpec, ...]:
    """The same file list, with sha256 values of the fixture files actually on disk."""
    return tuple(
        dataclasses.replace(f, sha256=_sha256(folder / f.name), md5=None, url=None)
        for f in spec_files
    )


def _idx_gz(array: np.ndarray) -> bytes:
    """An uint8 array in gzipped IDX format (magic 0x0000 08 <ndim>, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


# ----------------------------------------------------------------------------- registry


def test_builtin_datasets_are_registered():
    assert set(BUILTIN) <= set(list_datasets())
    assert list_datasets() == sorted(list_datasets())


@pytest.mark.parametrize("name", BUILTIN)
def test_spec_is_consistent(name):
    spec = get_dataset_spec(name)
    channels = spec.image_shape[0]
    assert len(spec.mean) == len(spec.std) == channels
    assert len(spec.class_names) == spec.num_classes == 10
    assert all(0 < s < 1 for s in spec.std) and all(0 < m < 1 for m in spec.mean)
    for f in (*spec.files, *spec.alternatives):
        assert f.sha256 or f.md5, f"{name}/{f.name} has no checksum"
        assert f.split in (None, *spec.splits)
    for split in spec.splits:  # every split can be read from somewhere
        assert spec.files_for(split) or not spec.files


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError) as info:
        get_dataset_spec("fashion_mnist")
    message = str(info.value)
    assert "'fashion-mnist'" in message and "Did you mean" in message
    assert all(name in message for name in BUILTIN)  # and lists what exists
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar100")


def test_register_refuses_duplicates_and_inconsistent_specs(register):
    spec = get_dataset_spec("digits")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(spec)
    with pytest.raises(ValueError, match="one value per channel"):
        register_dataset(dataclasses.replace(spec, name="bad-stats", mean=(0.1, 0.2)))
    register(dataclasses.replace(spec, name="digits-copy"))
    assert "digits-copy" in list_datasets()


# ----------------------------------------------------------------------------- digits + transforms


def test_digits_loads_without_files(tmp_path):
    train = load_dataset("digits", "train", data_dir=tmp_path, download=False)
    test = load_dataset("digits", "test", data_dir=tmp_path, download=False)
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 8, 8) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64 and train.image_shape == (1, 8, 8)
    assert torch.bincount(test.labels, minlength=10).min() >= 33  # first-80% split is balanced
    pixels = train.denormalize(train.images).double()
    assert pixels.mean().item() == pytest.approx(0.3054, abs=1e-3)
    assert pixels.std().item() == pytest.approx(0.3755, abs=1e-3)
    assert not any(tmp_path.iterdir())  # nothing written for a data set without files


def test_resize_and_channels(tmp_path):
    native = load_dataset("digits", "test", data_dir=tmp_path)
    big = load_dataset("digits", "test", data_dir=tmp_path, resize=16)
    wide = load_dataset("digits", "test", data_dir=tmp_path, resize=(12, 20), channels=3)
    assert big.images.shape == (360, 1, 16, 16)
    assert wide.images.shape == (360, 3, 12, 20) and wide.image_shape == (3, 12, 20)
    assert wide.mean == native.mean * 3 and wide.std == native.std * 3
    assert torch.equal(wide.images[:, 0], wide.images[:, 2])  # 1 -> 3 repeats the plane
    # Normalisation happens after resizing: resized pixels stay in [0, 1] and keep their mean.
    pixels = big.denormalize(big.images)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert pixels.mean().item() == pytest.approx(
        native.denormalize(native.images).mean().item(), abs=1e-2
    )
    assert torch.equal(big.labels, native.labels)


def test_pad_adds_a_background_border_after_resizing(tmp_path):
    plain = load_dataset("digits", "test", data_dir=tmp_path, resize=12)
    padded = load_dataset("digits", "test", data_dir=tmp_path, resize=12, pad=2, channels=3)
    assert padded.images.shape == (360, 3, 16, 16) and padded.image_shape == (3, 16, 16)
    # The image is the resized one, untouched, inside a 2-pixel border of background (0 in [0, 1]).
    assert torch.equal(padded.images[:, :1, 2:-2, 2:-2], plain.images)
    pixels = padded.denormalize(padded.images)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert pixels[..., border].abs().max() < 1e-6
    # Normalisation keeps the data set's own train statistics (not those of the padded images).
    assert padded.mean == plain.mean * 3 and padded.std == plain.std * 3


@pytest.mark.parametrize("pad", [None, 0])
def test_no_pad_leaves_the_data_unchanged(tmp_path, pad):
    before = load_dataset("digits", "test", data_dir=tmp_path, resize=12)
    after = load_dataset("digits", "test", data_dir=tmp_path, resize=12, pad=pad)
    assert torch.equal(after.images, before.images) and after.mean == before.mean


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "valid"}, "unknown split"),
        ({"resize": 0}, "positive"),
        ({"resize": (8, 8, 8)}, "resize"),
        ({"resize": 2.5}, "resize"),
        ({"channels": 2}, "channels"),
        ({"pad": -1}, r"pad must be >= 0 pixels per side, got -1: pass 0 or None.*lower resize"),
        ({"pad": 2.5}, "pad must be a whole number of pixels"),
        ({"pad": True}, "pad must be a whole number of pixels"),
    ],
)
def test_bad_options_raise_value_error(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", data_dir=tmp_path, **kwargs)


def test_normalize_roundtrip():
    x = torch.rand(4, 3, 5, 5)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    y = normalize_pixels(x, mean, std)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.2) / 0.25)
    ds = ImageDataset(y, torch.zeros(4, dtype=torch.int64), "x", 10, tuple("0123456789"), mean, std)
    assert torch.allclose(ds.denormalize(y), x, atol=1e-6)
    assert len(ds) == 4 and ds.image_shape == (3, 5, 5)
    with pytest.raises(ValueError, match="one mean and std per channel"):
        normalize_pixels(x, (0.5,), (0.5,))


def _mnist_fixture(tmp_path, register, n_train: int = 64) -> str:
    """A registered MNIST-format set of random 8-bit digits (MNIST's statistics) in ``tmp_path``."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", 16)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(_idx_gz(images))
        labels = np.arange(n, dtype=np.uint8) % 10
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(_idx_gz(labels))
    real = get_dataset_spec("mnist")
    register(dataclasses.replace(real, name="mnist-fixture", files=_pinned(real.files, folder)))
    return "mnist-fixture"


@pytest.mark.parametrize("kwargs", [{}, {"pad": 2}, {"channels": 3}, {"pad": 1, "channels": 3}])
def test_uint8_pixels_stay_compact_and_normalise_to_the_same_floats(tmp_path, register, kwargs):
    name = _mnist_fixture(tmp_path, register)
    compact = load_dataset(name, data_dir=tmp_path, download=False, **kwargs)
    # resize to the native size takes the float path (normalise the whole split at once), which
    # resizes nothing: the float32 images as they were before 8-bit storage.
    eager = load_dataset(name, data_dir=tmp_path, download=False, resize=28, **kwargs)
    assert compact.compact and not eager.compact
    assert compact.image_shape == eager.image_shape and compact.mean == eager.mean
    index = torch.randperm(len(compact), generator=torch.Generator().manual_seed(0))[:10]
    batch = compact.take(index)
    assert batch.dtype == torch.float32 and torch.equal(batch, eager.images[index])
    assert torch.equal(compact.images, eager.images)  # all of them, bit for bit
    assert compact.images is compact.images  # made once, then kept
    part = compact.subset(index)
    assert part.compact and torch.equal(part.images, eager.images[index])
    assert torch.equal(part.labels, eager.labels[index])
    moved = compact.to("cpu")
    assert moved is compact


def test_dataset_of_floats_is_held_as_given():
    x = torch.randn(4, 1, 3, 3)
    ds = ImageDataset(x, torch.arange(4), "x", 4, tuple("0123"), (0.5,), (0.25,))
    assert not ds.compact and ds.images is x and torch.equal(ds.take(slice(1, 3)), x[1:3])
    pixels = torch.arange(36, dtype=torch.uint8).view(4, 1, 3, 3)
    ds = dataclasses.replace(ds, images=pixels)  # uint8 given: kept compact
    assert ds.compact and torch.equal(ds.images, (pixels / 255.0 - 0.5) / 0.25)


# ----------------------------------------------------------------------------- IDX reader


def test_idx_header_is_parsed(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(_idx_gz(array))
    np.testing.assert_array_equal(_read_idx(path), array)


def test_idx_wrong_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"PK\x03\x04" + bytes(100)))
    with pytest.raises(ValueError, match="not an IDX file"):
        _read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(gzip.decompress(_idx_gz(np.zeros((3, 4, 4))))[:-5]))
    with pytest.raises(ValueError, match="truncated"):
        _read_idx(short)


# ----------------------------------------------------------------------------- CIFAR-10 format


def _write_cifar(folder: Path, per_batch: int = 3) -> dict[str, np.ndarray]:
    """Write data_batch_1..5 and test_batch as CIFAR-10 python pickles; return the raw rows."""
    rng = np.random.default_rng(0)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with open(batches / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f, 2)
        rows[name] = (data, labels)
    return rows


def test_cifar10_reader_on_format_fixture(tmp_path, register):
    folder = tmp_path / "cifar10"
    rows = _write_cifar(folder)
    real = get_dataset_spec("cifar10")
    register(dataclasses.replace(real, name="cifar10-fixture", files=_pinned(real.files, folder)))

    train = load_dataset("cifar10-fixture", "train", data_dir=tmp_path, download=False)
    test = load_dataset("cifar10-fixture", "test", data_dir=tmp_path, download=False)
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    data, labels = rows["test_batch"]
    assert test.labels.tolist() == labels
    # Row layout: 1024 red, 1024 green, 1024 blue values, each plane row-major.
    pixels = test.denormalize(test.images)
    c, h, w = 2, 5, 7
    assert pixels[1, c, h, w].item() == pytest.approx(
        data[1, c * 1024 + h * 32 + w] / 255, abs=1e-5
    )
    assert train.labels[:3].tolist() == rows["data_batch_1"][1]

    gray = load_dataset("cifar10-fixture", "test", data_dir=tmp_path, channels=1)
    luma = 0.299 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2]
    assert torch.allclose(gray.denormalize(gray.images)[:, 0], luma, atol=1e-5)
    assert gray.mean[0] == pytest.approx(0.299 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465)


def test_cifar10_non_canonical_batches_are_never_unpickled(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "cifar10")
    unpickled = []
    monkeypatch.setattr(readers, "_read_cifar_batch", lambda path: unpickled.append(path))
    with pytest.raises(ValueError, match="checksum mismatch.*test_batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert not unpickled


def test_cifar_unpickler_refuses_anything_but_arrays(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": datetime.date(2020, 1, 1), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load datetime.date"):
        _read_cifar_batch(path)


# ----------------------------------------------------------------------------- SVHN format


def test_svhn_reader_on_format_fixture(tmp_path, register):
    folder = tmp_path / "svhn"
    folder.mkdir()
    rng = np.random.default_rng(1)
    fixtures = {}
    for split, n in (("train", 5), ("test", 4)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # [H, W, C, N]
        y = np.array([[10], [1], [9], [10], [3]][:n], dtype=np.uint8)  # 10 means digit 0
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        fixtures[split] = (x, y)
    real = get_dataset_spec("svhn")
    register(dataclasses.replace(real, name="svhn-fixture", files=_pinned(real.files, folder)))

    test = load_dataset("svhn-fixture", "test", data_dir=tmp_path, download=False)
    x, _ = fixtures["test"]
    assert test.images.shape == (4, 3, 32, 32)
    assert test.labels.tolist() == [0, 1, 9, 0]
    pixels = test.denormalize(test.images)
    assert pixels[2, 1, 3, 30].item() == pytest.approx(x[3, 30, 1, 2] / 255, abs=1e-5)
    assert len(load_dataset("svhn-fixture", "train", data_dir=tmp_path)) == 5


# ----------------------------------------------------------------------------- USPS, LIBSVM copy


def test_usps_libsvm_alternative(tmp_path, register):
    folder = tmp_path / "usps"
    folder.mkdir()
    rng = np.random.default_rng(2)
    values = np.round(rng.uniform(-1, 1, size=(3, 256)), 4)
    values[0, 5] = 0.0  # omitted below, as LIBSVM's sparse format allows
    lines = []
    for digit, row in zip([0, 9, 4], values, strict=True):
        items = " ".join(f"{i + 1}:{v:.4f}" for i, v in enumerate(row) if v != 0.0)
        lines.append(f"{digit + 1} {items}\n")  # LIBSVM labels are digit + 1
    for name in ("usps.bz2", "usps.t.bz2"):
        (folder / name).write_bytes(bz2.compress("".join(lines).encode()))
    real = get_dataset_spec("usps")
    spec = dataclasses.replace(
        real, name="usps-libsvm", alternatives=_pinned(real.alternatives, folder)
    )
    register(spec)

    ds = load_dataset("usps-libsvm", "train", data_dir=tmp_path, download=False)
    assert ds.labels.tolist() == [0, 9, 4] and ds.images.shape == (3, 1, 16, 16)
    pixels = ds.denormalize(ds.images)[:, 0].reshape(3, 256)
    assert torch.allclose(pixels, torch.from_numpy((values + 1) / 2).float(), atol=1e-5)
    assert pixels[0, 5].item() == pytest.approx(0.5)


def test_dataset_status(tmp_path):
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "zip.train.gz").write_bytes(b"")  # presence only; not hashed here
    rows = {row["name"]: row for row in dataset_status(tmp_path)}
    assert set(BUILTIN) <= set(rows)
    assert rows["digits"]["present"] and rows["digits"]["missing"] == []
    assert not rows["usps"]["present"] and rows["usps"]["missing"] == ["zip.test.gz"]
    assert rows["svhn"]["missing"] == ["train_32x32.mat", "test_32x32.mat"]
    assert rows["mnist"]["folder"] == str(tmp_path.resolve() / "mnist")
    assert rows["cifar10"]["shape"] == (3, 32, 32) and rows["cifar10"]["classes"] == 10


# ----------------------------------------------------------------------------- real data


REAL = {
    # name, split: (count, label histogram) from /work/shared/datasets/README.md
    ("mnist", "train"): (60000, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    ("mnist", "test"): (10000, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    ("fashion-mnist", "train"): (60000, [6000] * 10),
    ("fashion-mnist", "test"): (10000, [1000] * 10),
    ("usps", "train"): (7291, [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]),
    ("usps", "test"): (2007, [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]),
}
_LOADED: dict[tuple[str, str], ImageDataset] = {}


def _real(name: str, split: str, **kwargs) -> ImageDataset:
    """Load from $DATADISTILL_DATA (cached across tests), or skip with the reason."""
    root = os.environ.get("DATADISTILL_DATA")
    if not root:
        pytest.skip("DATADISTILL_DATA is not set; real-data tests need the data sets")
    spec = get_dataset_spec(name)
    folder = Path(root).resolve() / spec.subdir
    missing = [f.name for f in spec.files_for(split) if not (folder / f.name).is_file()]
    if missing:
        pytest.skip(f"{name} {split} files missing from {folder}: {', '.join(missing)}")
    if kwargs:
        return load_dataset(name, split, download=False, **kwargs)
    if (name, split) not in _LOADED:
        _LOADED[(name, split)] = load_dataset(name, split, download=False)
    return _LOADED[(name, split)]


@pytest.mark.parametrize("name, split", list(REAL))
def test_real_counts_and_labels(name, split):
    ds = _real(name, split)
    count, histogram = REAL[(name, split)]
    spec = get_dataset_spec(name)
    assert ds.images.shape == (count, *spec.image_shape) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (count,) and ds.labels.dtype == torch.int64
    assert torch.bincount(ds.labels, minlength=10).tolist() == histogram


@pytest.mark.parametrize(
    "name, mean, std",
    [("mnist", 0.1307, 0.3081), ("fashion-mnist", 0.2860, 0.3530), ("usps", 0.2545, 0.3846)],
)
def test_real_pixel_statistics(name, mean, std):
    ds = _real(name, "train")
    assert ds.mean == (mean,) and ds.std == (std,)
    # Pixel statistics from the normalised tensor (x = x' * std + mean), without a 2nd full copy.
    norm_std, norm_mean = torch.std_mean(ds.images)
    assert norm_mean.item() == pytest.approx(0.0, abs=3e-3)  # it is normalised ...
    assert norm_mean.item() * std + mean == pytest.approx(mean, abs=1e-3)  # ... with its own stats
    assert norm_std.item() * std == pytest.approx(std, abs=1e-3)
    low, high = ds.denormalize(torch.stack([ds.images.min(), ds.images.max()]).view(2, 1, 1, 1))
    assert (low.item(), high.item()) == pytest.approx((0.0, 1.0), abs=1e-6)


def test_real_usps_as_mnist_input():
    ds = _real("usps", "test", resize=28)
    assert ds.images.shape == (2007, 1, 28, 28)
    assert torch.equal(ds.labels, _real("usps", "test").labels)


def test_real_usps_in_mnist_digit_box():
    # MNIST digits sit in a 20x20 box centred in 28x28: its outer ring is background (0) and its
    # 4-pixel margin nearly so. USPS digits fill their 16x16 frame (they touch its top and bottom
    # rows), but its background is 0 too (the corners), so padding with 0 adds more background.
    mnist = _real("mnist", "test")
    m = mnist.denormalize(mnist.images)[:, 0]
    ring = torch.ones(28, 28, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    margin = torch.ones(28, 28, dtype=torch.bool)
    margin[4:-4, 4:-4] = False
    assert m[:, ring].mean() < 1e-3 and m[:, margin].mean() < 0.02
    native = _real("usps", "test")
    u = native.denormalize(native.images)[:, 0]
    corners = u[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.mean() < 0.01 and u[:, 0].mean() > 0.1  # background 0; digits touch the top

    boxed = _real("usps", "test", resize=20, pad=4)
    assert boxed.images.shape == (2007, 1, 28, 28)
    assert boxed.mean == (0.2545,) and boxed.std == (0.3846,)  # USPS's own train statistics
    pixels = boxed.denormalize(boxed.images)[:, 0]
    assert pixels[:, margin].abs().max() < 1e-6
    assert torch.equal(boxed.images[:, :, 4:-4, 4:-4], _real("usps", "test", resize=20).images)
    assert torch.equal(boxed.labels, native.labels)


def test_real_mnist_three_channels():
    ds = _real("mnist", "test", channels=3)
    assert ds.images.shape == (10000, 3, 28, 28) and ds.mean == (0.1307,) * 3
    assert torch.equal(ds.images[:, 1], _real("mnist", "test").images[:, 0])


# ----------------------------------------------------------------------------- your own data


def _own_folder(root: Path, classes=("a", "b"), per_class=5, mode="L", suffix="png") -> Path:
    """``root/<class>/<i>.<suffix>``: 8x8 images, class k around gray level 40 + 60·k (8-bit scale)."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8), 40 + 60 * k + i, np.uint8)
            pixels[0, 0] = 0  # no constant image
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}.{suffix}")
    return root


def _arrays(n_per_class=(6, 6, 6)) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    x = (np.random.default_rng(0).random((len(y), 8, 8)) * 255).astype(np.uint8)
    return x, y


@pytest.mark.parametrize("train, test", [("Train", "Test"), ("TRAIN", "test")])
def test_split_folders_are_matched_in_any_case(tmp_path, train, test):
    # Train/ and Test/ were read as two classes named after the splits
    _own_folder(tmp_path / "d" / train)
    _own_folder(tmp_path / "d" / test, per_class=2)
    ds = load_dataset(str(tmp_path / "d"), "test")
    assert ds.class_names == ("a", "b") and ds.labels.tolist() == [0, 0, 1, 1]
    # and half a split is refused in any case too, as train/ beside val/ is
    _own_folder(tmp_path / "h" / "Train")
    _own_folder(tmp_path / "h" / "Val")
    with pytest.raises(ValueError, match="has Train/<class>/ folders but no test/ .beside Val/"):
        load_dataset(str(tmp_path / "h"))


def test_folder_pixels_are_scaled_by_bit_depth_not_by_value(tmp_path):
    root = tmp_path / "f"
    for k, name in enumerate(("a_dark", "b_bright")):  # float TIFFs in [0, 1]: were divided by 255
        (root / name).mkdir(parents=True)
        for i in range(5):
            pixels = np.full((8, 8), 0.25 + 0.5 * k, np.float32)
            pixels[0, 0] = i / 10
            Image.fromarray(pixels).save(root / name / f"{i}.tiff")  # mode F
    ds = load_dataset(str(root))
    pixels = ds.denormalize(ds.images)[:, 0, 1, 1]
    assert pixels[ds.labels == 0] == pytest.approx(0.25, abs=1e-5)
    assert pixels[ds.labels == 1] == pytest.approx(0.75, abs=1e-5)

    # 16-bit PNGs of 12-bit data: divided by 65535 whatever each image's maximum, so the order holds
    root = tmp_path / "p16"
    for name, level in (("low", 100), ("high", 3000)):
        (root / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8), level + i, np.uint16)).save(root / name / f"{i}.png")
    ds = load_dataset(str(root))
    pixels = ds.denormalize(ds.images)[:, 0, 0, 0]
    assert ds.class_names == ("high", "low")
    assert pixels[ds.labels == 1].max() < pixels[ds.labels == 0].min()
    assert pixels[ds.labels == 0].min() == pytest.approx(3000 / 65535, abs=1e-6)


@pytest.mark.parametrize(
    "pixels, mode, match",
    [
        (
            np.full((8, 8), 200, np.int32),
            "I",
            "32-bit integer pixels .* convert the images to 16-bit",
        ),
        (np.full((8, 8), 3.0, np.float32), "F", r"range over \[3, 3\].* must lie in \[0, 1\]"),
    ],
)
def test_folder_images_without_a_known_scale_are_refused(tmp_path, pixels, mode, match):
    root = _own_folder(tmp_path / "d")
    image = Image.fromarray(pixels)
    assert image.mode == mode
    image.save(root / "a" / "odd.tiff")
    with pytest.raises(ValueError, match=match) as err:
        load_dataset(str(root))
    assert "odd.tiff" in str(err.value) and "\n" not in str(err.value)


def test_gray_palette_images_have_one_channel(tmp_path):
    assert load_dataset(str(_own_folder(tmp_path / "p", mode="P"))).image_shape == (1, 8, 8)
    assert load_dataset(str(_own_folder(tmp_path / "g", suffix="gif"))).image_shape == (1, 8, 8)
    colour = _own_folder(tmp_path / "c", mode="P")
    Image.new("RGB", (8, 8), (255, 0, 0)).convert("P").save(colour / "a" / "red.png")
    assert load_dataset(str(colour)).image_shape == (3, 8, 8)


def test_split_refuses_a_class_left_without_test_images(tmp_path):
    # the class got no test image, silently: the accuracy printed left it out
    root = _own_folder(tmp_path / "d", classes=("a", "b", "c"))
    for path in sorted((root / "c").iterdir())[1:]:
        path.unlink()
    with pytest.raises(
        ValueError, match="class c has 1 image.*add images of it, or give a separate"
    ):
        load_dataset(str(root))
    x, y = _arrays((6, 6, 2))
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, class_names=np.array(["ant", "bee", "cat"]))
    with pytest.raises(ValueError, match="class cat has 2 image"):
        load_dataset(str(tmp_path / "a.npz"))
    assert len(load_dataset(str(tmp_path / "a.npz"), test_fraction=0.3, split="test")) == 5


def test_half_precision_tensors_are_read_and_sparse_ones_refused(tmp_path):
    from datadistill.data.sources import from_python

    x, y = _arrays()
    x = torch.from_numpy(x).float() / 255
    y = torch.from_numpy(y)
    plain = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    torch.save(plain, tmp_path / "f32.pt")
    torch.save({**plain, "x_train": x.bfloat16(), "x_test": x.bfloat16()}, tmp_path / "bf16.pt")
    from safetensors.torch import save_file

    halves = {"x_train": x.half(), "y_train": y, "x_test": x.half(), "y_test": y.clone()}
    save_file(halves, tmp_path / "f16.safetensors")
    for name in ("bf16.pt", "f16.safetensors"):
        half = load_dataset(str(tmp_path / name))
        assert half.images.dtype == torch.float32 and len(half) == len(y)
    train, _ = from_python((x.bfloat16(), y), (x.half(), y))
    assert train.images.dtype == torch.float32

    torch.save({**plain, "x_train": x.to_sparse()}, tmp_path / "sparse.pt")
    with pytest.raises(
        ValueError, match=r"sparse.pt: x_train: a sparse_coo tensor; give a dense one"
    ):
        load_dataset(str(tmp_path / "sparse.pt"))


def test_pt_files_that_are_not_plain_tensors_get_one_clean_line(tmp_path):
    x, y = _arrays()
    torch.save({"x_train": x, "y_train": y}, tmp_path / "numpy.pt")  # NumPy arrays, not tensors
    (tmp_path / "junk.pt").write_bytes(b"hello")
    for name, expected in [
        (
            "numpy.pt",
            "holds NumPy arrays, which a safe torch.load refuses; convert them with "
            "torch.from_numpy",
        ),
        ("junk.pt", "not a file torch.save wrote (neither a zip archive nor a pickle)"),
    ]:
        with pytest.raises(ValueError) as err:
            load_dataset(str(tmp_path / name))
        message = str(err.value)
        assert message.startswith(str(tmp_path / name)) and expected in message
        assert "\n" not in message and "\x1b" not in message and "two options" not in message


def _deep_ints(tmp: Path) -> Path:
    x, y = _arrays()
    x[0, 0, 0] = 255  # 12-bit data: 0…4080
    np.savez(tmp / "d.npz", x_train=x.astype(np.uint16) * 16, y_train=y, x_test=x, y_test=y)
    return tmp / "d.npz"


def _nan(tmp: Path) -> Path:
    x, y = _arrays()
    x = x / 255.0
    x[3, 2, 2] = np.nan
    np.savez(tmp / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return tmp / "d.npz"


def _flat_x(tmp: Path) -> Path:
    x, y = _arrays()
    np.savez(tmp / "d.npz", x_train=x.reshape(-1), y_train=y, x_test=x, y_test=y)
    return tmp / "d.npz"


@pytest.mark.parametrize(
    "make, expected",
    [
        (
            _deep_ints,
            "x_train: integer pixels range over 0…4080, but integer pixels are read as 8-bit "
            "(0…255); give floats in [0, 1] (e.g. x / 65535",
        ),
        (
            _nan,
            "x_train: pixels hold NaN or inf values (1 of them, the first in image 3); replace them",
        ),
        (_flat_x, "x_train/y_train: images of shape (1152,) (1-D); give x as [N, H, W]"),
    ],
)
def test_bad_arrays_get_a_message_with_the_fix(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(ValueError) as err:
        load_dataset(str(path))
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


def test_channels_refusal_names_the_flag(tmp_path):
    with pytest.raises(
        ValueError, match=r"--channels \(channels=\) must be 1 \(gray\) or 3 \(RGB\)"
    ):
        load_dataset(str(_own_folder(tmp_path / "d")), channels=2)


def test_an_empty_class_folder_is_one_error_with_the_fix_that_works(tmp_path):
    # an empty train/d without test/d was first sent to add test images, then found empty
    root = tmp_path / "d"
    _own_folder(root / "train", classes=("a", "b"))
    _own_folder(root / "test", classes=("a", "b"), per_class=2)
    (root / "train" / "d").mkdir()
    with pytest.raises(
        ValueError, match="train/d: class folder holds no images; add images or remove"
    ):
        load_dataset(str(root))
    (root / "train" / "d").rmdir()
    assert load_dataset(str(root), "test").class_names == ("a", "b")
    (root / "test" / "b" / "0.png").unlink()
    (root / "test" / "b" / "1.png").unlink()
    with pytest.raises(
        ValueError, match="test/b: class folder holds no images, so the test accuracy"
    ):
        load_dataset(str(root))


def test_a_relative_path_is_never_replaced_by_one_in_data_dir(tmp_path, monkeypatch):
    # --dataset ./nowhere/mine.npz --data-dir dd trained on dd/mine.npz, silently
    x, y = _arrays()
    (tmp_path / "dd").mkdir()
    np.savez(tmp_path / "dd" / "mine.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    monkeypatch.chdir(tmp_path)
    for given in ("./nowhere/mine.npz", "mine.npz"):
        with pytest.raises(FileNotFoundError, match=f"data '{given}' not found .*dd/mine.npz"):
            load_dataset(given, data_dir="dd")
    # a run's recorded (absolute) path that moved is still found in data_dir
    moved = load_dataset(str(tmp_path / "gone" / "mine.npz"), data_dir="dd")
    assert moved.source["path"] == str(tmp_path / "dd" / "mine.npz")


def test_pil_images_from_python_are_scaled_as_in_a_folder():
    # a torch Dataset of float PIL images went through convert("L"), which clipped [0, 1] to 0 and 1
    from datadistill.data.sources import from_python

    class Floats(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            pixels = np.full((8, 8), 0.25 + 0.5 * (i % 2), np.float32)
            pixels[0, 0] = i / 40
            if i % 4 == 0:  # an 8-bit image among the float ones
                return Image.fromarray(np.round(pixels * 255).astype(np.uint8)), i % 2
            return Image.fromarray(pixels), i % 2

    train, _ = from_python(Floats(), None)
    pixels = train.denormalize(train.images)[:, 0, 1, 1]
    assert pixels[train.labels == 0] == pytest.approx(0.25, abs=0.5 / 255)
    assert pixels[train.labels == 1] == pytest.approx(0.75, abs=0.5 / 255)


def test_python_test_split_converts_rgb_to_the_runs_gray_channel_as_channels_does():
    from datadistill.data.python_data import test_split_from_python

    like = {"num_classes": 2, "mean": [0.5], "std": [0.25], "class_names": ["a", "b"]}
    rgb = torch.zeros(4, 3, 8, 8)
    rgb[:, 1] = 1.0  # pure green: luma 0.587
    split = test_split_from_python((rgb, torch.tensor([0, 1, 0, 1])), like=like)
    assert split.images.shape == (4, 1, 8, 8)
    torch.testing.assert_close(split.images, torch.full((4, 1, 8, 8), (0.587 - 0.5) / 0.25))


def test_training_and_testing_folders_are_the_splits_and_two_names_for_one_are_refused(tmp_path):
    _own_folder(tmp_path / "d" / "training")
    _own_folder(tmp_path / "d" / "Testing", per_class=2)
    ds = load_dataset(str(tmp_path / "d"), "test")
    assert ds.class_names == ("a", "b") and ds.labels.tolist() == [0, 0, 1, 1]
    _own_folder(tmp_path / "d" / "train")
    with pytest.raises(ValueError, match=r"train/ and training/ both name the train split"):
        load_dataset(str(tmp_path / "d"))
