"""What a run trains: the network, p(θ_0) and the data normalisation, built from a config or a manifest.

Shared by ``distill``, ``evaluate`` and the experiments; it reads pre-trained pools through ``pools`` (storage),
never through the pre-training experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from datadistill.data import ImageDataset, load_dataset
from datadistill.inits import InitDistribution
from datadistill.models.user import ModelLike
from datadistill.pools import load_pool
from datadistill.types import Params

DEFAULT_MODEL_FOR = {
    "cifar10": "alexcifarnet",
    "svhn": "alexcifarnet",
    "digits": "mlp",
}  # else lenet


@dataclass
class Setting:
    """What a distilled set is trained and tested with: the network, p(θ_0) and the data normalisation."""

    model: nn.Module
    inits: InitDistribution
    dataset: str  # a registered name or the path of the user's data
    resize: int | None
    channels: int | None
    data_dir: str | None
    pad: int | None = None  # background pixels added on each side after resizing
    model_spec: str = ""  # what the run records: registered name, module:factory, or python:<Name>
    # for a user's data: the recorded {"path", "format", "sha256", "test_fraction"} the data must match
    source: dict[str, Any] | None = None
    test_fraction: float | None = None  # split of a user's data without a test split

    def load(self, split: str) -> ImageDataset:
        """One split of the data, checked against the recorded content hash for a user's data."""
        if self.source is not None and self.source.get("format") == "python":
            raise ValueError(
                "this run was distilled from data passed in Python (train=...), which the run folder "
                "does not hold: evaluate it in Python with evaluate(run, test=(x, y)), or save the "
                "data as .npz and distil from its path"
            )
        if self.source is not None:
            return _load_recorded(self, split)
        return load_dataset(
            self.dataset,
            split,
            data_dir=self.data_dir,
            resize=self.resize,
            pad=self.pad,
            channels=self.channels,
            test_fraction=self.test_fraction,
        )


def _load_recorded(setting: Setting, split: str) -> ImageDataset:
    """Load a user's data from where the run recorded it (or ``data_dir``), refusing changed data."""
    source = setting.source or {}
    path, expected = source["path"], source.get("sha256")
    name = Path(path).name
    try:
        data = load_dataset(
            path,
            split,
            data_dir=setting.data_dir,
            resize=setting.resize,
            pad=setting.pad,
            channels=setting.channels,
            test_fraction=source.get("test_fraction") if _has_no_test(source) else None,
        )
    except FileNotFoundError:
        also = f" nor in --data-dir {setting.data_dir}" if setting.data_dir else ""
        raise FileNotFoundError(
            f"this run's data is not at {path}{also} (sha256 {str(expected)[:16]}…): put it back, or "
            f"pass --data-dir FOLDER with the folder that now holds {name!r}"
        ) from None
    found = (data.source or {}).get("sha256")
    if expected is not None and found != expected:
        raise ValueError(
            f"the data at {(data.source or {}).get('path')} changed since this run was made (sha256 "
            f"{str(expected)[:16]}… expected, {str(found)[:16]}… found): restore it, or pass "
            f"--data-dir FOLDER holding the original {name!r}"
        )
    return data


def _has_no_test(source: dict[str, Any]) -> bool:
    return source.get("test_fraction") is not None


def default_model(dataset: str, image_shape: tuple[int, int, int]) -> str:
    """The network used when none is named: the registered set's default, else one that fits the size."""
    from datadistill.data import list_datasets
    from datadistill.models.user import default_model_for

    if isinstance(dataset, str) and dataset in list_datasets():
        return DEFAULT_MODEL_FOR.get(dataset, "lenet")
    return default_model_for(image_shape)


def make_setting(
    *,
    dataset: str,
    model: ModelLike | None,
    init: str,
    init_scheme: str = "xavier",
    seed: int = 0,
    pretrained: str | None = None,
    resize: int | None = None,
    pad: int | None = None,
    channels: int | None = None,
    data_dir: str | None = None,
    image_shape: tuple[int, int, int],
    num_classes: int,
    source: dict[str, Any] | None = None,
    test_fraction: float | None = None,
    model_signature: dict[str, list[int]] | None = None,
) -> Setting:
    """Build the network and init distribution for a data set of the given (converted) image shape.

    ``model`` is a registered name, ``module:factory``, a factory callable or an ``nn.Module`` (see
    :mod:`datadistill.models.user`); None picks :func:`default_model`. ``model_signature``, a run's record
    of its network's shapes, refuses a network built otherwise now (an edited factory).
    """
    from datadistill.models.user import check_signature, resolve_model

    chosen = model if model is not None else default_model(dataset, tuple(image_shape))
    net, spec = resolve_model(chosen, tuple(image_shape), num_classes)
    check_signature(net, spec, model_signature)
    pool: list[Params] = []
    heldout: list[Params] = []
    if init.startswith("pretrained"):
        if pretrained is None:
            raise ValueError(
                f"--init {init} needs --pretrained DIR (a `datadistill pretrain` pool)"
            )
        pool, heldout = load_pool(
            pretrained, net, spec=spec, in_shape=tuple(image_shape), num_classes=num_classes
        )
    inits = InitDistribution(init, net, init_scheme, seed, pool, heldout)
    return Setting(
        net,
        inits,
        dataset,
        resize,
        channels,
        data_dir,
        pad=pad,
        model_spec=spec,
        source=source,
        test_fraction=test_fraction,
    )


def setting_from_manifest(
    manifest: dict[str, Any], *, data_dir: str | None = None, model: ModelLike | None = None
) -> Setting:
    """Rebuild the ``Setting`` a distilled set was made for from its manifest.

    ``model`` replaces the recorded network (needed when the run's network was a Python object).
    """
    shape = manifest["images_shape"][2:]
    source = manifest.get("data_source")
    if model is None:
        from datadistill.models.user import make_importable

        make_importable(manifest["model"], manifest.get("model_root"))
    return make_setting(
        dataset=source["path"] if source and source.get("path") else manifest["dataset"],
        model=model if model is not None else manifest["model"],
        init=manifest["init"],
        init_scheme=manifest.get("init_scheme") or "xavier",
        # null in a hand-edited manifest reads as absent, as a missing key does
        seed=next(
            (v for v in (manifest.get("init_seed"), manifest.get("seed")) if v is not None), 0
        ),
        pretrained=manifest.get("pretrained"),
        resize=manifest.get("resize"),
        pad=manifest.get("pad"),  # absent from manifests written before the option existed
        channels=manifest.get("channels"),
        data_dir=data_dir if data_dir is not None else manifest.get("data_dir"),
        image_shape=tuple(shape),
        num_classes=manifest["num_classes"],
        source=source,
        # the network as distilled: checked when rebuilt from the run's own factory, not one passed in
        model_signature=manifest.get("model_signature") if model is None else None,
    )
