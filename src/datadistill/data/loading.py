"""Load a registered data set as normalised tensors, optionally resized, padded and channel-converted."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from datadistill.data.files import (
    _ensure_split_files,
    _missing_for_split,
    recheck_after_read_error,
    resolve_data_dir,
)
from datadistill.data.registry import get_dataset_spec, list_datasets
from datadistill.memory import check_fits_in_memory

# ITU-R BT.601 luma weights, the ones PIL's "L" mode and torchvision's rgb_to_grayscale use.
_LUMA = (0.299, 0.587, 0.114)


def _channel_view(values: Sequence[float], like: Tensor) -> Tensor:
    """Per-channel constants shaped [C, 1, 1] to broadcast over [..., C, H, W]."""
    return torch.tensor(tuple(values), dtype=like.dtype, device=like.device).view(-1, 1, 1)


def _check_stats(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> None:
    channels = images.shape[-3] if images.dim() >= 3 else None
    if channels is None or len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"images of shape {tuple(images.shape)} need [..., C, H, W] with one mean and std per "
            f"channel; got mean={tuple(mean)} std={tuple(std)}"
        )


def check_channels(channels: int | None) -> None:
    """Raise ValueError unless ``channels`` is None (keep the data's own), 1 or 3."""
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ValueError(
            f"--channels (channels=) must be 1 (gray) or 3 (RGB), or left out to keep the data's own "
            f"count; got {channels!r}"
        )


def normalize_pixels(images01: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Standardise pixels per channel: ``x' = (x - mean_c) / std_c``.

    Args:
        images01: ``[..., C, H, W]`` float pixels in [0, 1].
        mean: One value per channel, on the [0, 1] scale.
        std: One value per channel, on the [0, 1] scale.

    Returns:
        A new tensor of the same shape.

    Example:
        >>> normalize_pixels(torch.full((1, 1, 2, 2), 0.5), (0.5,), (0.25,)).unique()
        tensor([0.])
    """
    _check_stats(images01, mean, std)
    return (images01 - _channel_view(mean, images01)) / _channel_view(std, images01)


def _denormalize_pixels(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Inverse of :func:`normalize_pixels`: ``x = x' * std_c + mean_c``."""
    _check_stats(images, mean, std)
    return images * _channel_view(std, images) + _channel_view(mean, images)


@dataclass
class ImageDataset:
    """A whole split in memory, normalised, with what is needed to undo the normalisation.

    ``images`` reads as float32 normalised with ``mean`` and ``std`` whatever the dataset holds. It may hold
    them that way, or, where that is exact, as the 8-bit pixels its files store (a quarter of the memory:
    45 instead of 179 MiB for MNIST's training split), normalised when read: ``take(index)`` normalises
    only a batch, ``images`` all of them (made on first use, then kept). The values are the same either
    way, to the bit. Pass ``images`` as normalised floats, or as uint8 pixels 0…255 to keep them compact.
    """

    images: Tensor  # [N, C, H, W] float32, normalised with `mean` and `std` (may be held as uint8)
    labels: Tensor  # [N] int64 in [0, num_classes)
    name: str  # registry name, e.g. "mnist"
    num_classes: int  # number of classes
    class_names: tuple[str, ...]  # human-readable name per label
    mean: tuple[float, ...]  # per-channel mean used to normalise (after channel conversion)
    std: tuple[float, ...]  # per-channel std used to normalise (after channel conversion)
    # for data from a path or Python: {"path", "format", "sha256", "test_fraction"}; None if registered
    source: dict | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image, after any resize, padding and channel conversion."""
        c, h, w = self._stored.shape[1:]
        return (c, h, w)

    @property
    def device(self) -> torch.device:
        """Where the images are."""
        return self._stored.device

    @property
    def compact(self) -> bool:
        """True when the images are held as uint8 pixels and normalised when read."""
        return self._stored.dtype == torch.uint8

    def take(self, index: Tensor | slice | int) -> Tensor:
        """Normalised float32 images at ``index`` (e.g. a batch's indices), without the whole split in
        float: equal, bit for bit, to ``self.images[index]``."""
        part = self._stored[index]
        return _normalize_uint8(part, self.mean, self.std) if self.compact else part

    def subset(self, index: Tensor) -> ImageDataset:
        """The images and labels at ``index`` as a dataset of their own, held as this one holds them."""
        return dataclasses.replace(self, images=self._stored[index], labels=self.labels[index])

    def to(self, device: torch.device | str) -> ImageDataset:
        """This dataset with its images and labels on ``device`` (itself when they are there already)."""
        device = torch.device(device)
        if self._stored.device == device and self.labels.device == device:
            return self
        return dataclasses.replace(
            self, images=self._stored.to(device), labels=self.labels.to(device)
        )

    def denormalize(self, images: Tensor) -> Tensor:
        """Map normalised images back to pixel space (about [0, 1]; clamp before saving a PNG).

        Args:
            images: ``[..., C, H, W]``, normalised like this data set (e.g. distilled images).

        Returns:
            ``images * std + mean`` per channel, same shape.
        """
        return _denormalize_pixels(images, self.mean, self.std)

    def __len__(self) -> int:
        return self.labels.shape[0]


def _get_images(self: ImageDataset) -> Tensor:
    """All the images, ``[N, C, H, W]`` float32 normalised (of uint8 pixels: made on the first read and
    kept; ``take`` normalises a batch without keeping them)."""
    if not self.compact:
        return self._stored
    if self._normalized is None:
        self._normalized = _normalize_uint8(self._stored, self.mean, self.std)
    return self._normalized


def _set_images(self: ImageDataset, images: Tensor) -> None:
    self._stored = images  # [N, C, H, W] uint8 pixels, or float32 normalised
    self._normalized = None  # the float32 images of uint8 pixels, once `images` was read


# `images` is a property over what the dataset holds, installed after @dataclass so that the generated
# __init__ and dataclasses.replace still take `images=` (through the setter).
ImageDataset.images = property(_get_images, _set_images, doc=_get_images.__doc__)  # type: ignore[assignment]


def _normalize_uint8(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``[..., C, H, W]`` pixels 0…255 -> float32 ``(x / 255 - mean_c) / std_c``.

    The same float32 operations in the same order as :func:`load_dataset` applies to a whole split, so
    the values are identical to the bit whether a split is normalised at once or batch by batch.
    """
    x = _to_unit_float(pixels, "")
    return x.sub_(_channel_view(mean, x)).div_(_channel_view(std, x))


def _to_unit_float(images: Tensor, name: str) -> Tensor:
    """uint8 [0, 255] or float [0, 1] -> float32 [0, 1]."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise ValueError(f"dataset {name!r}: reader gave {images.dtype} images; need uint8 or float")


def _parse_size(resize: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if resize is None:
        return None
    if isinstance(resize, int) and not isinstance(resize, bool):
        size = (resize, resize)
    elif (
        isinstance(resize, Sequence)
        and len(resize) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in resize)
    ):
        size = (resize[0], resize[1])
    else:
        raise ValueError(f"resize must be an int or (height, width) of ints, got {resize!r}")
    if min(size) < 1:
        raise ValueError(f"resize must be positive, got {resize!r}")
    return size


def _check_pad(pad: int | None) -> None:
    if pad is None:
        return
    if isinstance(pad, bool) or not isinstance(pad, int):
        raise ValueError(
            f"pad must be a whole number of pixels (or None), got {pad!r}; e.g. resize=20, pad=4"
        )
    if pad < 0:
        raise ValueError(
            f"pad must be >= 0 pixels per side, got {pad!r}: pass 0 or None for no border; to make "
            "images smaller, lower resize instead (e.g. resize=20, pad=4 gives 28x28)"
        )


def check_converted_size(
    what: str, count: int, shape: tuple[int, int, int], bytes_per_value: int
) -> None:
    """Refuse ``count`` images of ``shape`` (C, H, W after resize and pad) that would not fit in memory.

    The estimate is twice the result: resizing or padding writes a new tensor beside its source.
    """
    c, h, w = shape
    check_fits_in_memory(
        2 * count * c * h * w * bytes_per_value,
        f"{what}: {count} images of {c}x{h}x{w}",
        "choose a smaller --resize or --pad",
    )


def _resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``[N, C, H, W]`` pixels, antialiased so downsampling does not alias.

    Bilinear weights are non-negative and sum to one, so [0, 1] pixels stay in [0, 1].
    """
    if tuple(images.shape[-2:]) == size:
        return images
    check_converted_size("resizing", len(images), (images.shape[1], *size), 4)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _convert_channels(
    images: Tensor, mean: tuple[float, ...], std: tuple[float, ...], channels: int
) -> tuple[Tensor, tuple[float, ...], tuple[float, ...]]:
    """Change the channel count of ``[N, C, H, W]`` [0, 1] pixels and their statistics with them.

    1 -> 3 repeats the gray plane (mean and std repeat). 3 -> 1 takes the luma
    ``y = 0.299 r + 0.587 g + 0.114 b``; its mean is exactly the weighted mean, and its std is
    taken as the weighted std, which is exact for perfectly correlated channels and a slight
    over-estimate otherwise (natural images' channels are strongly correlated).
    """
    have = images.shape[1]
    if have == channels:
        return images, mean, std
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous(), mean * 3, std * 3
    if have == 3 and channels == 1:
        weights = _channel_view(_LUMA, images)  # [3, 1, 1]
        gray = (images * weights).sum(dim=1, keepdim=True)  # [N, 1, H, W]
        luma_mean = sum(w * m for w, m in zip(_LUMA, mean, strict=True))
        luma_std = sum(w * s for w, s in zip(_LUMA, std, strict=True))
        return gray, (luma_mean,), (luma_std,)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def load_dataset(
    name: str | Path,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    resize: int | tuple[int, int] | None = None,
    pad: int | None = None,
    channels: int | None = None,
    download: bool = True,
    test_fraction: float | None = None,
) -> ImageDataset:
    """Load one split of a registered data set, or of your own data at a path, into memory, normalised.

    A registered name always means the registered set. Anything else that looks like a path (it
    exists, holds a ``/``, starts with ``.`` or ``~``, or ends in ``.npz``/``.pt``/``.safetensors``)
    is read by :func:`datadistill.data.sources.load_source`: an image folder or an array file, with
    statistics from its own training split (``test_fraction`` splits a source without a test split).

    Files are checked against their known checksums on first use (the result is cached next to
    them), and downloaded from the canonical source if missing and `download` is set. Images go
    through: pixels in [0, 1] -> channel conversion -> bilinear resize -> padding -> per-channel
    normalisation with the data set's train statistics (adjusted for the channel conversion).

    Args:
        name: A registered data set (see :func:`list_datasets`), e.g. ``"mnist"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Folder holding one sub-folder per data set; default ``$DATADISTILL_DATA``, else
            the user cache dir (see :func:`resolve_data_dir`).
        resize: Output size, an int for square images or ``(height, width)``; None keeps the
            native size. E.g. 28 to feed USPS to an MNIST network.
        pad: Pixels of background added on every side after resizing, so an image grows by
            ``2 * pad`` each way; None or 0 adds none. The border is 0 in [0, 1] pixel space (it
            becomes ``-mean / std`` after normalisation), which is the background of the digit
            sets: MNIST's outer ring is 0 (mean 0.0002 over the training set) and USPS's corners
            are (mean 0.002), though USPS digits often touch its top and bottom rows. USPS digits
            fill their 16x16 frame while MNIST's sit in a 20x20 box centred in 28x28, so
            ``resize=20, pad=4`` gives USPS MNIST's geometry. Normalisation keeps the data set's
            own train mean/std (of the unpadded images), so padded data is not exactly zero-mean.
        channels: 1 or 3 to convert (1 -> 3 repeats the plane, 3 -> 1 takes luma); None keeps
            the native count.
        download: Fetch missing files over the network (with a timeout) if True.

    Returns:
        An :class:`ImageDataset` with images ``[N, C, H, W]`` float32 and labels ``[N]`` int64. Files of
        8-bit pixels loaded without ``resize`` or a 3 -> 1 channel conversion stay 8-bit in memory and
        are normalised when read (``images``, or ``take`` for a batch), to the same float32 values.

    Raises:
        ValueError: Unknown name, split or option, or a file failing its checksum.
        FileNotFoundError: Files missing and not downloadable; the message lists them and where
            to get them.

    Example:
        >>> usps = load_dataset("usps", "test", resize=20, pad=4)  # doctest: +SKIP
        >>> usps.images.shape  # doctest: +SKIP
        torch.Size([2007, 1, 28, 28])
    """
    if not isinstance(name, str | os.PathLike):
        raise ValueError(
            f"dataset must be a registered name or a path, got a {type(name).__name__}; to use "
            "arrays or a torch Dataset, pass train=(x, y) and test=(x, y) instead"
        )
    if name not in list_datasets():
        from datadistill.data.sources import load_source, looks_like_path

        if looks_like_path(name):
            return load_source(
                name,
                split,
                data_dir=data_dir,
                resize=resize,
                pad=pad,
                channels=channels,
                test_fraction=test_fraction,
            )
    spec = get_dataset_spec(name)
    if test_fraction is not None:
        raise ValueError(
            f"--test-fraction splits your own data without a test split; {name!r} has its own"
        )
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for {name!r}; choose from {spec.splits}")
    size = _parse_size(resize)
    _check_pad(pad)
    check_channels(channels)

    folder = resolve_data_dir(data_dir) / spec.subdir
    used = _ensure_split_files(spec, folder, split, download=download)
    try:
        images, labels = spec.reader(folder, split)
    except Exception as err:  # any decoding error (gzip, zlib, EOF, struct, pickle, …)
        raise recheck_after_read_error(spec, folder, used, err) from err

    n = labels.shape[0]
    if tuple(images.shape) != (n, *spec.image_shape) or labels.dim() != 1:
        raise ValueError(
            f"dataset {name!r}: reader returned images {tuple(images.shape)} and labels "
            f"{tuple(labels.shape)}; expected [N, {', '.join(map(str, spec.image_shape))}] and [N]"
        )
    labels = labels.to(torch.int64)
    if n and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(f"dataset {name!r}: labels outside 0..{spec.num_classes - 1}")

    mean, std = tuple(spec.mean), tuple(spec.std)
    target = channels or images.shape[1]
    h, w = size or tuple(images.shape[-2:])
    compact = images.dtype == torch.uint8 and size is None and target >= images.shape[1]
    border = 2 * (pad or 0)
    check_converted_size(
        f"{name} {split}", n, (target, h + border, w + border), 1 if compact else 4
    )
    meta = dict(
        name=spec.name,
        num_classes=spec.num_classes,
        class_names=spec.class_names,
    )
    if compact:
        # Padding with 0 and repeating a gray plane are exact in 8 bits: keep the pixels as they are
        # (a quarter of float32's memory) and normalise them when read (see ImageDataset).
        if pad:
            images = F.pad(images, (pad, pad, pad, pad), value=0)
        images, mean, std = _convert_channels(images, mean, std, target)
        return ImageDataset(images=images, labels=labels, mean=mean, std=std, **meta)

    pixels = _to_unit_float(images, name)  # [N, C, H, W] in [0, 1]
    # Both steps are linear per pixel, so they commute; do the cheap order (fewer channels first).
    if target < pixels.shape[1]:
        pixels, mean, std = _convert_channels(pixels, mean, std, target)
    if size is not None:
        pixels = _resize(pixels, size)
    if pad:
        pixels = F.pad(pixels, (pad, pad, pad, pad), value=0.0)  # background is 0 (see docstring)
    pixels, mean, std = _convert_channels(pixels, mean, std, target)

    if pixels.data_ptr() == images.data_ptr():
        pixels = pixels.clone()  # never normalise the reader's tensor in place
    # In place: `pixels` is ours, and a second full-size copy (188 MB for MNIST) costs ~0.3 s.
    pixels.sub_(_channel_view(mean, pixels)).div_(_channel_view(std, pixels))

    return ImageDataset(images=pixels, labels=labels, mean=mean, std=std, **meta)


def dataset_status(data_dir: str | Path | None = None) -> list[dict]:
    """One row per registered data set: is it on disk, and what is missing (for ``datadistill
    datasets``).

    Presence is checked by file name only (no hashing, so this is instant); checksums are verified
    when a data set is loaded. A data set counts as present when every split can be loaded without
    the network: its files, or accepted alternatives, or its archive (unpacked on first load).

    Args:
        data_dir: As in :func:`load_dataset`.

    Returns:
        Dicts with keys ``name``, ``shape`` ``(C, H, W)``, ``classes``, ``folder`` (a path, or
        ``"(bundled; no files needed)"`` for data sets with no files), ``present`` (bool),
        ``missing`` (file names) and ``homepage``.
    """
    root = resolve_data_dir(data_dir)
    rows = []
    for name in list_datasets():
        spec = get_dataset_spec(name)
        folder = root / spec.subdir
        missing: list[str] = []
        for split in spec.splits:
            for fspec in _missing_for_split(spec, folder, split):
                if fspec.name not in missing:
                    missing.append(fspec.name)
        rows.append(
            {
                "name": spec.name,
                "shape": spec.image_shape,
                "classes": spec.num_classes,
                "folder": str(folder) if spec.files else "(bundled; no files needed)",
                "present": not missing,
                "missing": missing,
                "homepage": spec.homepage,
            }
        )
    return rows
