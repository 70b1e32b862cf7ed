"""Evaluation: train fresh networks by replaying a distilled schedule, measure accuracy on the full real test set.

The protocol is the paper's (Wang et al. 2018, §4): start from θ_0 drawn from the run's init distribution
(held-out inits for random kinds, never ones seen in distillation), apply the distilled steps in order with their
learned lrs for all epochs, and report test accuracy as mean ± std over networks, beside the accuracy before
training.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from datadistill.artifacts import DistilledData, check_writable, write_json
from datadistill.data import ImageDataset, load_dataset
from datadistill.inits import InitDistribution
from datadistill.models import build_model
from datadistill.unroll import Params, Steps, unroll

DEFAULT_MODELS = {"fixed": 1, "pretrained-fixed": 1, "random": 200, "pretrained-random": 200}
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
        from datadistill.pretrain import load_pool

        pool, heldout = load_pool(pretrained, net)
    inits = InitDistribution(init, net, init_scheme, seed, pool, heldout)
    return Setting(net, inits, dataset, resize, channels, data_dir, pad=pad)


def _model_count(models: int | None, inits: InitDistribution) -> int:
    """``--models`` as given (must be positive), else the init kind's default, capped at the pool."""
    if models is None:
        available = inits.max_evaluation_models()
        default = DEFAULT_MODELS[inits.kind]
        return default if available is None else min(default, available)
    if models < 1:
        raise ValueError(f"--models must be a positive integer, got {models}")
    return models


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


@dataclass
class EvalResult:
    """Test accuracy (%) of networks trained on a distilled schedule."""

    accuracy_mean: float
    accuracy_std: float
    n_models: int
    accuracy_before_mean: float
    accuracy_before_std: float
    accuracies: list[float] = field(default_factory=list)
    accuracies_before: list[float] = field(default_factory=list)
    protocol: str = (
        "replay"  # replay: distilled steps in order with learned lrs (the paper's protocol)
    )
    init: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A small Markdown table of the result."""
        return (
            f"| protocol | init | networks | before training | after |\n|---|---|---|---|---|\n"
            f"| {self.protocol} | {self.init} | {self.n_models} | "
            f"{self.accuracy_before_mean:.2f} ± {self.accuracy_before_std:.2f} | "
            f"{self.accuracy_mean:.2f} ± {self.accuracy_std:.2f} |"
        )

    @classmethod
    def from_accuracies(cls, after: list[float], before: list[float], **kwargs) -> EvalResult:
        return cls(
            accuracy_mean=statistics.fmean(after),
            accuracy_std=statistics.pstdev(after) if len(after) > 1 else 0.0,
            n_models=len(after),
            accuracy_before_mean=statistics.fmean(before),
            accuracy_before_std=statistics.pstdev(before) if len(before) > 1 else 0.0,
            accuracies=after,
            accuracies_before=before,
            **kwargs,
        )


@torch.no_grad()
def accuracy(
    model: nn.Module, params: Params, images: Tensor, labels: Tensor, batch_size: int = 2000
) -> float:
    """Top-1 accuracy (%) of ``model`` with ``params`` on ``images [N, C, H, W]``, ``labels [N]``."""
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = functional_call(model, params, (images[i : i + batch_size],))
        correct += int((logits.argmax(dim=1) == labels[i : i + batch_size]).sum())
    return 100.0 * correct / max(len(images), 1)


def evaluate_steps(
    model: nn.Module,
    steps: Steps,
    inits: InitDistribution,
    test_images: Tensor,
    test_labels: Tensor,
    n_models: int,
    *,
    start: int = 0,
    progress: bool = False,
) -> tuple[list[float], list[float]]:
    """Accuracies (%) after and before replaying ``steps`` from ``n_models`` evaluation inits.

    Args:
        model: the network (called functionally).
        steps: images ``[S, n, C, H, W]``, labels, lrs ``[S·E]`` on the device of ``test_images``.
        inits: p(θ_0); its evaluation inits are used (held out from distillation for random kinds).
        test_images: ``[N, C, H, W]`` real test images; ``test_labels``: ``[N]``.
        n_models: networks to train.
        start: index of the first evaluation init (to split the work across processes).
    """
    device = test_images.device
    steps = Steps(steps.images.detach(), steps.labels.detach(), steps.lrs.detach())
    after, before = [], []
    bar = tqdm(
        inits.evaluation_inits(n_models, start),
        total=n_models,
        desc="evaluate",
        disable=not progress,
        leave=False,
    )
    for params in bar:
        params = {k: v.to(device) for k, v in params.items()}
        before.append(accuracy(model, params, test_images, test_labels))
        trained = unroll(model, params, steps, create_graph=False)[-1]
        after.append(accuracy(model, trained, test_images, test_labels))
        bar.set_postfix(acc=f"{statistics.fmean(after):.2f}")
    return after, before


def evaluate(
    data: DistilledData | str | Path,
    *,
    models: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate a distilled set (or a run folder) with the paper's replay protocol.

    Args:
        data: a ``DistilledData`` or the folder it was saved to.
        models: networks to train; default 1 for fixed inits, 200 held-out inits for random ones.
        data_dir: where the real data lives (default: the manifest's, else $DATADISTILL_DATA / cache).
        device: ``cpu`` or ``cuda``.
        json_path: also write the result as JSON (keys ``accuracy_mean``, ``accuracy_std``, ``n_models``,
            ``accuracy_before_mean``, …).

    Returns:
        ``EvalResult`` with accuracies in percent.
    """
    if json_path is not None:
        check_writable(json_path, "--json")  # before the networks are trained, not after
    if not isinstance(data, DistilledData):
        data = DistilledData.load(data)
    manifest = data.manifest
    setting = setting_from_manifest(manifest, data_dir=data_dir)
    n = _model_count(models, setting.inits)
    available = setting.inits.max_evaluation_models()
    if available is not None and n > available:
        if setting.inits.is_fixed:
            n = 1  # a fixed init has exactly one network to train
        else:
            raise ValueError(f"--models {n} exceeds the {available} held-out networks of the pool")
    test = setting.load("test")
    dev = torch.device(device)
    steps = Steps(data.images.to(dev), data.targets().to(dev), data.lrs.to(dev))
    after, before = evaluate_steps(
        setting.model,
        steps,
        setting.inits,
        test.images.to(dev),
        test.labels.to(dev),
        n,
        progress=progress,
    )
    result = EvalResult.from_accuracies(after, before, init=setting.inits.kind)
    if json_path is not None:
        write_json(Path(json_path), result.to_dict())
    if not all(math.isfinite(a) for a in after):
        raise RuntimeError("evaluation produced non-finite accuracies")
    return result


# ---------------------------------------------------------------------------------------------------------
# The field's protocol: the distilled images as an ordinary training set
# ---------------------------------------------------------------------------------------------------------
# Later work (DC, DSA, MTT, …) trains a network on the synthetic images with minibatch SGD for many epochs, in
# any order and with its own step size. The paper's images are made to be replayed in order with their learned
# lrs; many users of the reference code retrained them the field's way and got 12–62%. Both are useful numbers,
# so both exist here, and every result says which protocol produced it (``protocol="dataset"`` here).

DATASET_PROTOCOL = "dataset"  # EvalResult.protocol of networks trained by ``train_as_dataset``


def train_as_dataset(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    params: Params,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> Params:
    """Train from θ_0 = ``params`` on ``images`` as an ordinary training set (the field's protocol).

    Minibatch SGD with momentum over shuffled images, ``epochs`` passes; the distilled order and learned
    lrs are *not* replayed:

        v ← μ v + ∇_θ ℓ(B; θ),   θ ← θ − lr · v,   B a random minibatch of the images.

    Args:
        model: the network (called functionally; its own parameters are never used or changed).
        images: ``[..., C, H, W]`` images, e.g. a distilled ``[S, n, C, H, W]``; flattened to ``[N, C, H, W]``.
        labels: matching int64 classes ``[...]``, or float soft targets ``[..., K]`` (``DistilledData.targets()``).
        params: θ_0 (not modified).
        epochs: passes over the images.
        lr: SGD step size.
        momentum: SGD momentum (0.9, as in the field).
        weight_decay: L2 penalty of SGD.
        batch_size: images per minibatch (all of them when there are fewer).
        generator: CPU generator for the shuffling (None: a fresh one seeded 0, so runs repeat).

    Returns:
        θ after training, detached.

    Example:
        >>> theta = train_as_dataset(model, data.images, data.labels, theta0, epochs=300)  # doctest: +SKIP
    """
    from datadistill.unroll import inner_loss

    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"epochs and batch_size must be positive integers and lr positive, got "
            f"epochs={epochs!r}, batch_size={batch_size!r}, lr={lr!r}"
        )
    x = images.detach().reshape(-1, *images.shape[-3:])  # [N, C, H, W]
    y = labels.detach()
    y = y.reshape(-1, y.shape[-1]) if y.is_floating_point() else y.reshape(-1)  # [N] or [N, K]
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    theta = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    opt = torch.optim.SGD(list(theta.values()), lr=lr, momentum=momentum, weight_decay=weight_decay)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for i in range(0, len(x), batch_size):
            batch = order[i : i + batch_size]
            loss = inner_loss(model, theta, x[batch], y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {name: p.detach() for name, p in theta.items()}


def evaluate_as_dataset(
    data: DistilledData | str | Path,
    *,
    models: int | None = None,
    epochs: int = 300,
    lr: float = 0.01,
    momentum: float = 0.9,
    batch_size: int = 256,
    data_dir: str | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate a distilled set with the field's protocol (``train_as_dataset``), not the paper's replay.

    Networks start from the same evaluation inits as ``evaluate`` (held out for random kinds) and are tested
    on the full real test set; the result has ``protocol="dataset"`` so it cannot be mistaken for a replay
    number.

    Args:
        data: a ``DistilledData`` or the folder it was saved to.
        models: networks to train; default 1 for fixed inits, 200 held-out inits for random ones.
        epochs, lr, momentum, batch_size: the SGD recipe of ``train_as_dataset``.
        data_dir: where the real data lives (default: the manifest's, else $DATADISTILL_DATA / cache).
        device: ``cpu`` or ``cuda``.
        json_path: also write the result as JSON.

    Returns:
        ``EvalResult`` with accuracies in percent and ``protocol == "dataset"``.
    """
    if json_path is not None:
        check_writable(json_path, "--json")  # before the networks are trained, not after
    if not isinstance(data, DistilledData):
        data = DistilledData.load(data)
    setting = setting_from_manifest(data.manifest, data_dir=data_dir)
    n = _model_count(models, setting.inits)
    if setting.inits.is_fixed:
        n = 1  # a fixed init has exactly one network to train
    test = setting.load("test")
    dev = torch.device(device)
    test_x, test_y = test.images.to(dev), test.labels.to(dev)
    images, labels = data.images.to(dev), data.targets().to(dev)
    after, before = [], []
    inits = setting.inits.evaluation_inits(n)
    for i, params in enumerate(tqdm(inits, total=n, desc="evaluate", disable=not progress)):
        params = {k: v.to(dev) for k, v in params.items()}
        before.append(accuracy(setting.model, params, test_x, test_y))
        trained = train_as_dataset(
            setting.model,
            images,
            labels,
            params,
            epochs=epochs,
            lr=lr,
            momentum=momentum,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(i),  # network i's shuffling, repeatable
        )
        after.append(accuracy(setting.model, trained, test_x, test_y))
    result = EvalResult.from_accuracies(
        after, before, init=setting.inits.kind, protocol=DATASET_PROTOCOL
    )
    if json_path is not None:
        write_json(Path(json_path), result.to_dict())
    return result
