"""datadistill: dataset distillation (Wang, Zhu, Torralba, Efros 2018) in PyTorch.

Learn a few synthetic images and per-step learning rates such that a network trained on them, by replaying the
steps in order, reaches high accuracy on the real test set.

Example:
    >>> import datadistill
    >>> data = datadistill.distill(dataset="mnist", steps=1, epochs=3, iterations=500)  # doctest: +SKIP
    >>> datadistill.evaluate(data).accuracy_mean  # doctest: +SKIP
"""

from datadistill._version import __version__  # noqa: F401  (datadistill.__version__)
from datadistill.artifacts import DistilledData
from datadistill.config import DistillConfig
from datadistill.data import load_dataset
from datadistill.distill import distill
from datadistill.evaluate import evaluate
from datadistill.gallery import load_pretrained
from datadistill.models import build_model

__all__ = [
    "DistillConfig",
    "DistilledData",
    "build_model",
    "distill",
    "evaluate",
    "load_dataset",
    "load_pretrained",
]
