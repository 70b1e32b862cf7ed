"""What a run trains: the network, p(θ_0) and the data normalisation, built from a config or a manifest.

Shared by ``distill``, ``evaluate`` and the experiments; it reads pre-trained pools through ``pools`` (storage),
never through the pre-training experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from datadistill.data import ImageDataset, load_dataset
from datadistill.inits import InitDistribution
from datadistill.models import build_model
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
    dataset: str
    resize: int | None
    channels: int | None
    data_dir: str | None
    pad: int | None = None  # background pixels added on each side after resizing

    def load(self, split: str) -> ImageDataset:
        return load_dataset(
            self.dataset,
            split,
            data_dir=self.data_dir,
            resize=self.resize,
            pad=self.pad,
            channels=self.channels,
        )


def make_setting(
    *,
    dataset: str,
    model: str | None,
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
) -> Setting:
    """Build the network and init distribution for a data set of the given (converted) image shape."""
    name = model or DEFAULT_MODEL_FOR.get(dataset, "lenet")
    net = build_model(name, tuple(image_shape), num_classes)
    pool: list[Params] = []
    heldout: list[Params] = []
    if init.startswith("pretrained"):
        if pretrained is None:
            raise ValueError(
                f"--init {init} needs --pretrained DIR (a `datadistill pretrain` pool)"
            )
        pool, heldout = load_pool(pretrained, net)
    inits = InitDistribution(init, net, init_scheme, seed, pool, heldout)
    return Setting(net, inits, dataset, resize, channels, data_dir, pad=pad)


def setting_from_manifest(manifest: dict[str, Any], *, data_dir: str | None = None) -> Setting:
    """Rebuild the ``Setting`` a distilled set was made for from its manifest."""
    shape = manifest["images_shape"][2:]
    return make_setting(
        dataset=manifest["dataset"],
        model=manifest["model"],
        init=manifest["init"],
        init_scheme=manifest.get("init_scheme", "xavier"),
        seed=manifest.get("init_seed", manifest.get("seed", 0)),
        pretrained=manifest.get("pretrained"),
        resize=manifest.get("resize"),
        pad=manifest.get("pad"),  # absent from manifests written before the option existed
        channels=manifest.get("channels"),
        data_dir=data_dir if data_dir is not None else manifest.get("data_dir"),
        image_shape=tuple(shape),
        num_classes=manifest["num_classes"],
    )
