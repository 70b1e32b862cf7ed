"""datadistill: dataset distillation (Wang, Zhu, Torralba, Efros 2018) in PyTorch.

Learn a few synthetic images and per-step learning rates such that a network trained on them, by replaying the
steps in order, reaches high accuracy on the real test set.

Example:
    >>> import datadistill
    >>> data = datadistill.distill(dataset="mnist", steps=1, epochs=3, iterations=500)  # doctest: +SKIP
    >>> datadistill.evaluate(data).accuracy_mean  # doctest: +SKIP
"""

__version__ = "0.1.0"

from datadistill.artifacts import DistilledData  # noqa: E402
from datadistill.config import DistillConfig  # noqa: E402
from datadistill.data import load_dataset  # noqa: E402
from datadistill.distill import distill  # noqa: E402
from datadistill.evaluate import evaluate  # noqa: E402
from datadistill.gallery import load_pretrained  # noqa: E402
from datadistill.models import build_model  # noqa: E402

__all__ = [
    "DistillConfig",
    "DistilledData",
    "build_model",
    "distill",
    "evaluate",
    "load_dataset",
    "load_pretrained",
]
