"""Image folders (torchvision's ``ImageFolder`` layout) read into arrays; rules in :mod:`datadistill.data.sources`."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datadistill.data.arrays import (
    DEFAULT_TEST_FRACTION,
    GRAY_MODES,
    _Decoded,
    _from_arrays,
    _split,
)
from datadistill.data.loading import (
    _resize,
    check_converted_size,
)

# split folder names, matched in any case; val/ is not a test split (it is refused beside train/ alone)
SPLIT_NAMES = {"train": ("train", "training"), "test": ("test", "testing")}
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # Pillow modes of more than 8 bits per pixel


def _decode_folder(
    root: Path, size: tuple[int, int] | None, test_fraction: float | None
) -> _Decoded:
    digest = hashlib.sha256()
    splits = _split_folders(root)
    if splits["train"] and splits["test"]:
        train_dir, test_dir = splits["train"], splits["test"]
        if test_fraction is not None:
            raise ValueError(
                f"{root} has its own {train_dir.name}/ and {test_dir.name}/ folders; drop "
                "--test-fraction (it splits a single tree of class folders)"
            )
        names = _class_folders(train_dir)
        test_names = _class_folders(test_dir, allow_single=True)
        _refuse_empty_classes(train_dir, names, test_dir, test_names)
        extra = sorted(set(test_names) - set(names))
        if extra:
            raise ValueError(
                f"{test_dir}: class folder(s) {', '.join(extra)} have no counterpart in "
                f"{train_dir}; the two must hold the same classes"
            )
        missing = sorted(set(names) - set(test_names))
        if missing:
            raise ValueError(
                f"{test_dir}: no folder for class(es) {', '.join(missing)} of {train_dir}, so the "
                "test accuracy would leave them out; add their test images, or hold out a share of one "
                "tree of class folders with --test-fraction"
            )
        # the hash prefixes stay lower-case, so renaming Train/ to train/ keeps a run's data the same
        train = _read_images(train_dir, names, digest, "train/")
        test = _read_images(test_dir, test_names, digest, "test/", names.index)
        fraction = None
    else:
        _refuse_half_split(root, splits)
        names = _class_folders(root)
        train = _read_images(root, names, digest, "")
        fraction = test_fraction or DEFAULT_TEST_FRACTION
        test = None
    items = train + (test or [])
    shapes = {tuple(img.shape) for _, img in items}
    channels = 1 if all(img.shape[0] == 1 for _, img in items) else 3
    sizes = {s[-2:] for s in shapes}
    if len(sizes) > 1 and size is None:
        (path_a, img_a), (path_b, img_b) = _two_sizes(items)
        raise ValueError(
            f"{root}: images differ in size ({path_a} is {img_a[1]}x{img_a[0]} pixels wide x high, "
            f"{path_b} is {img_b[1]}x{img_b[0]}); pass --resize N to bring them all to NxN"
        )

    def stack(part):
        if size is not None:
            check_converted_size(f"{root}", len(part), (channels, *size), 4)
        tensors = [_to_channels(img, channels) for _, img in part]
        if size is not None:
            tensors = [_resize(t.unsqueeze(0), size)[0] for t in tensors]
        labels = [label for (label, _), _ in part]
        return torch.stack(tensors), torch.tensor(labels, dtype=torch.int64)

    train_x, train_y = stack(train)
    if test is None:
        train_x, train_y, test_x, test_y = _split(train_x, train_y, fraction, str(root), names)
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


def _split_folders(root: Path) -> dict[str, Path | None]:
    """``root``'s ``train/`` and ``test/`` folders (or ``training/``, ``testing/``), their names matched in
    any case (``Train/``, ``TEST/``): read as one tree, split folders would become the classes."""
    found: dict[str, list[Path]] = {split: [] for split in SPLIT_NAMES}
    for path in (p for p in root.iterdir() if p.is_dir()):
        for split, names in SPLIT_NAMES.items():
            if path.name.lower() in names:
                found[split].append(path)
    for split, folders in found.items():
        if len(folders) > 1:
            listed = " and ".join(sorted(f"{f.name}/" for f in folders))
            raise ValueError(f"{root}: {listed} both name the {split} split; merge them into one")
    return {split: folders[0] if folders else None for split, folders in found.items()}


def _refuse_half_split(root: Path, splits: dict[str, Path | None]) -> None:
    """Refuse ``train/<class>/`` without ``test/`` (or the reverse): read as one tree, its split folders
    (``train``, ``val``, …) would become the classes and the run would learn to tell the splits apart."""
    for split, other in (("train", "test"), ("test", "train")):
        folder = splits[split]
        if folder is None or any(
            p.is_file() for p in folder.iterdir() if not p.name.startswith(".")
        ):
            continue  # a class that happens to be named train/test holds images
        siblings = sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and p != folder and not p.name.startswith(".")
        )
        also = (
            f" (beside {', '.join(siblings[:3])}/: name the held-out split {other}/)"
            if siblings
            else ""
        )
        raise ValueError(
            f"{root} has {folder.name}/<class>/ folders but no {other}/{also}; give it "
            f"{other}/<class>/ with the same classes, or put the class folders directly in {root} "
            "to split them by --test-fraction"
        )


def _refuse_empty_classes(
    train_dir: Path, names: list[str], test_dir: Path, test_names: list[str]
) -> None:
    """Refuse an empty class folder with the one fix that works, before the class lists are compared
    (an empty ``train/d`` without ``test/d`` was first sent to add test images, then found empty)."""
    for name in names:
        if not _image_files(train_dir, name):
            pair = test_dir / name
            also = (
                f" together with {pair}"
                if name in test_names and _image_files(test_dir, name)
                else ""
            )
            raise ValueError(
                f"{train_dir / name}: class folder holds no images; add images or remove the "
                f"folder{also}"
            )
    for name in test_names:
        if name in names and not _image_files(test_dir, name):
            raise ValueError(
                f"{test_dir / name}: class folder holds no images, so the test accuracy would leave "
                f"class {name} out; add its test images, or remove the class from both "
                f"{train_dir.name}/ and {test_dir.name}/"
            )


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


def _image_files(folder: Path, name: str) -> list[Path]:
    """The files under ``folder/name/``, sorted, hidden ones (``.*`` at any depth) skipped."""
    return sorted(
        p
        for p in (folder / name).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_images(folder: Path, names: list[str], digest, prefix: str, index=None) -> list:
    """``[((label, path), image [C, H, W])]`` of every image under ``folder/<class>/`` (see
    :func:`_pil_to_tensor`)."""
    from PIL import Image, UnidentifiedImageError

    items = []
    for label, name in enumerate(names):
        label = index(name) if index is not None else label
        files = _image_files(folder, name)
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
                    pixels = _pil_to_tensor(img, path)
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise ValueError(
                    f"{path}: not an image Pillow can read ({type(err).__name__}); remove it or "
                    "move it out of the data folder"
                ) from None
            items.append(((label, str(path)), pixels))
    return items


def _pil_to_tensor(img, path: Path) -> Tensor:
    """``[C, H, W]`` pixels of a PIL image: uint8 for 8-bit images, float32 in [0, 1] for deeper ones.

    C is 1 for gray modes and palettes of grays only, else 3 (RGB; alpha dropped). The scale follows the
    file's bit depth, never its values, so that every image of a set is scaled alike (a per-image guess
    had reversed the brightness of two classes): 8-bit / 255, 16-bit / 65535, float kept as it is (it
    must lie in [0, 1]); 32-bit integers are refused.
    """
    if img.mode in DEEP_MODES:
        array = np.asarray(img, dtype=np.float64) / _full_scale(img, path)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(_out_of_range(img, array, path))
        return torch.from_numpy(array.astype(np.float32)).unsqueeze(0)
    if img.mode in GRAY_MODES or img.mode == "P" and _gray_palette(img):
        array = np.asarray(img.convert("L"), dtype=np.uint8)
        return torch.from_numpy(array.copy()).unsqueeze(0)
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _full_scale(img, path: Path) -> float:
    """The value of white in ``img``'s mode: 1 for float, 65535 for 16-bit integers."""
    if img.mode == "F":
        return 1.0
    if img.mode.startswith("I;16"):
        return 65535.0
    # mode I holds 32-bit integers; Pillow also opens 16-bit PNGs (before 10.x) and 16-bit PGMs as I
    tag = getattr(img, "tag_v2", None)
    bits = max(tag.get(258, (0,))) if tag is not None else 16 if img.format in ("PNG", "PPM") else 0
    if bits != 16:
        raise ValueError(
            f"{path}: {bits or 'unknown'}-bit integer pixels (Pillow mode I), whose white level is "
            "unknown; convert the images to 16-bit or 8-bit PNG"
        )
    return 65535.0


def _out_of_range(img, scaled: np.ndarray, path: Path) -> str:
    if img.mode == "F" and not np.isfinite(scaled).all():
        return f"{path}: float pixels hold NaN or inf values; replace them, or save 8/16-bit PNGs"
    if img.mode == "F":
        return (
            f"{path}: float pixels range over [{scaled.min():.3g}, {scaled.max():.3g}], but float "
            "images are read as they are, so they must lie in [0, 1]; rescale them, or save 8/16-bit PNGs"
        )
    raw = np.asarray(img)
    return (
        f"{path}: 16-bit pixels range over {int(raw.min())}…{int(raw.max())}, outside 0…65535 "
        "(signed data?); save unsigned 16-bit or 8-bit PNGs"
    )


def _gray_palette(img) -> bool:
    """Whether every colour of a palette image is a gray (r = g = b): such an image has one channel."""
    palette = img.getpalette()  # [r, g, b, r, g, b, …], or None
    return palette is not None and all(
        palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3)
    )


def _to_channels(img: Tensor, channels: int) -> Tensor:
    """``[C, H, W]`` uint8 or float in [0, 1] -> float ``[channels, H, W]`` in [0, 1] (gray images of an RGB
    set are repeated)."""
    pixels = img.to(torch.float32) / 255.0 if img.dtype == torch.uint8 else img
    if pixels.shape[0] == 1 and channels == 3:
        pixels = pixels.expand(3, -1, -1).contiguous()
    return pixels
