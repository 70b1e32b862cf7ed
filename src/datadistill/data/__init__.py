"""Data sets by name: registry, checksum-verified files, readers and a normalising loader.

Registered: ``mnist``, ``fashion-mnist``, ``usps``, ``svhn``, ``cifar10`` and ``digits`` (the last
ships inside scikit-learn, so it needs no files).

Example:
    >>> from datadistill.data import load_dataset
    >>> train = load_dataset("mnist", "train")  # doctest: +SKIP
    >>> train.images.shape, train.mean  # doctest: +SKIP
    (torch.Size([60000, 1, 28, 28]), (0.1307,))
"""

from datadistill.data import catalog as _catalog  # noqa: F401  (registers the built-in data sets)
from datadistill.data.files import resolve_data_dir
from datadistill.data.loading import ImageDataset, dataset_status, load_dataset, normalize_pixels
from datadistill.data.registry import (
    DatasetSpec,
    FileSpec,
    get_dataset_spec,
    list_datasets,
    register_dataset,
)

__all__ = [
    "DatasetSpec",
    "FileSpec",
    "ImageDataset",
    "dataset_status",
    "get_dataset_spec",
    "list_datasets",
    "load_dataset",
    "normalize_pixels",
    "register_dataset",
    "resolve_data_dir",
]
