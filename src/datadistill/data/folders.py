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
        missing = sorted(set(names) - set(test_names))
        if missing:
            raise ValueError(
                f"{root / 'test'}: no folder for class(es) {', '.join(missing)} of {root / 'train'}, so the "
                "test accuracy would leave them out; add their test images, or hold out a share of one "
                "tree of class folders with --test-fraction"
            )
        train = _read_images(root / "train", names, digest, "train/")
        test = _read_images(root / "test", test_names, digest, "test/", names.index)
        fraction = None
    else:
        _refuse_half_split(root, has)
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
        if size is not None:
            check_converted_size(f"{root}", len(part), (channels, *size), 4)
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


def _refuse_half_split(root: Path, has: dict[str, bool]) -> None:
    """Refuse ``train/<class>/`` without ``test/`` (or the reverse): read as one tree, its split folders
    (``train``, ``val``, …) would become the classes and the run would learn to tell the splits apart."""
    for split, other in (("train", "test"), ("test", "train")):
        folder = root / split
        if not has[split] or any(
            p.is_file() for p in folder.iterdir() if not p.name.startswith(".")
        ):
            continue  # a class that happens to be named train/test holds images
        siblings = sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and p.name not in (split, other) and not p.name.startswith(".")
        )
        also = (
            f" (beside {', '.join(siblings[:3])}/: name the held-out split {other}/)"
            if siblings
            else ""
        )
        raise ValueError(
            f"{root} has {split}/<class>/ folders but no {other}/{also}; give it "
            f"{other}/<class>/ with the same classes, or put the class folders directly in {root} "
            "to split them by --test-fraction"
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
