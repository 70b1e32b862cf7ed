"""Pools of pre-trained networks: the p(θ_0) of the adaptation experiments (Wang et al. 2018, §3.5, Table 2).

``pretrain`` trains ``count`` networks of one architecture on a real (source) data set, each from its own seeded
Xavier init and its own shuffling, and writes a pool folder::

    POOL/
      net_0000.safetensors … net_{count-1}.safetensors    one parameter dict each (names of named_parameters())
      manifest.json                                       source data, shapes, normalisation, recipe, per-network
                                                          seed, test accuracy and split ("train" | "heldout")

``pools.load_pool`` reads it back as the two lists that ``InitDistribution`` consumes: the training part (sampled by
``pretrained-random`` during distillation; its first network is the ``pretrained-fixed`` one) and the held-out part
(only ever used to evaluate ``pretrained-random``).

Adaptation distils the TARGET data set starting from networks trained on the SOURCE. Each data set is normalised
with its own train mean/std (as the reference code does), so a pool trained on MNIST sees USPS images (resized to
20 and padded by 4 to 28, MNIST's digit box, or resized to 28) standardised with USPS statistics; the two must only
share the image shape (``resize``/``pad``/``channels``).

Speed. ``train_networks`` (``datadistill.train``) can train G networks together: their parameters stacked along a leading axis
``[G, ...]``, one ``torch.func.vmap``-ed ``functional_call`` runs all G forwards/backwards as batched kernels, each
network on its own mini-batch (Adam is elementwise, so one Adam over the stacked tensors is exactly G independent
Adams). On this project's CPU machine (2 cores, torch 2.13, batch 128, G = 10, other jobs sharing the cores) it
measured SLOWER than training the networks one after the other: LeNet 4.5k vs 7.2k network-images/s with 2 threads
(vmap/loop = 0.63; 0.58 at G = 20; 0.78 with 1 thread) — vmap turns LeNet's convolutions into grouped
convolutions, which the CPU backend runs poorly — and the MLP 27k vs 29k (0.95). So ``method="loop"`` is the
default. ``"vmap"`` stays available and is tested equal to it; on a GPU, batching small networks should pay (one
launch per layer for G networks), but that was not measured here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from datadistill._version import __version__
from datadistill.artifacts import MANIFEST_FILE, save_tensors, write_json
from datadistill.config import PRETRAIN_BETAS, PretrainConfig, with_overrides
from datadistill.data import ImageDataset, load_dataset
from datadistill.distributed import resolve_device
from datadistill.evaluate import accuracy
from datadistill.models import init_params
from datadistill.models.user import resolve_model
from datadistill.pools import NET_FILE, POOL_KIND
from datadistill.seeds import generator
from datadistill.train import train_networks
from datadistill.types import Params


def _init_generator(seed: int) -> torch.Generator:
    """The generator of network ``seed``'s Xavier init (independent of its shuffling stream)."""
    return generator(seed, "pretrain-init")


def accuracies(
    model: nn.Module, params: Sequence[Params], images: Tensor, labels: Tensor
) -> list[float]:
    """Top-1 test accuracy (%) of each network in ``params`` on ``images [N, C, H, W]``, ``labels [N]``."""
    device = images.device
    return [
        accuracy(model, {n: t.to(device) for n, t in p.items()}, images, labels) for p in params
    ]


def pretrain(cfg: PretrainConfig | None = None, **overrides: Any) -> dict[str, Any]:
    """Train a pool of ``count`` networks on a real data set and save it for ``--init pretrained-*``.

    Network i has seed ``seed + i``: its Xavier-normal init (the paper's, biases 0) and its batch order derive
    from it. The last ``heldout`` networks form the held-out part (evaluation of ``pretrained-random``), the
    others the training part; ``net_0000`` is the ``pretrained-fixed`` network.

    Recipe (faster than the paper's, which is Adam(2e-4, betas .5/.999) for 40 MNIST / 130 USPS epochs):
    Adam(``lr``, betas .5/.999) with a per-step cosine decay to 0, ``batch_size`` images per step, ``epochs``
    passes. Networks go through ``train_networks`` ``group_size`` at a time (one vmapped batch per group with
    ``method="vmap"``; one after the other with ``"loop"``, the faster on CPU for LeNet).

    Args (the fields of ``PretrainConfig``, given as ``cfg`` and/or keyword ``overrides``):
        dataset: registered source data set, e.g. ``"mnist"``.
        model: registered model, e.g. ``"lenet"``, or your own ``module:factory`` (as for distill).
        count: networks in the pool (training + held-out).
        epochs: passes over the training set per network.
        heldout: networks held out for evaluation; default ``count // 10`` (the paper: 200 next to 2000).
        out: pool folder to create; must not already hold a pool.
        data_dir: real data folder (default ``$DATADISTILL_DATA``, else the user cache).
        resize: resize images to ``resize × resize`` (e.g. 28 for USPS next to MNIST).
        pad: then add this many background pixels on each side (USPS: ``resize=20, pad=4`` puts its
            digits in MNIST's 20×20 box within 28×28).
        channels: convert images to this many channels (e.g. 3 for MNIST next to SVHN).
        test_fraction: your data without a test split: the share of each class held out for testing
            (default 0.2); give the one you distil with, so that no network trains on its test images.
        seed: seed of network 0.
        device: ``cpu`` or ``cuda``.
        batch_size: images per network per step.
        lr: peak Adam lr.
        method: ``"loop"`` or ``"vmap"`` (see ``train_networks``).
        group_size: networks trained together per ``train_networks`` call (the vmap batch; with ``"loop"`` it
            only sets how often files are written).
        progress: show a progress bar (networks done, mean test accuracy).

    Returns:
        The manifest written to ``out/manifest.json``.

    Example:
        >>> pretrain(dataset="mnist", model="lenet", count=30, heldout=10, out="pools/mnist")  # doctest: +SKIP
    """
    cfg = PretrainConfig(**with_overrides(PretrainConfig, cfg, overrides, "pretrain")).validate()
    out = Path(cfg.out)
    if (out / MANIFEST_FILE).exists():
        raise FileExistsError(
            f"{out} already holds a pool ({MANIFEST_FILE}); choose another --out or delete it"
        )
    dev = resolve_device(cfg.device)

    load = dict(
        data_dir=cfg.data_dir,
        resize=cfg.resize,
        pad=cfg.pad,
        channels=cfg.channels,
        test_fraction=cfg.test_fraction,
    )
    train = load_dataset(cfg.dataset, "train", **load)
    test = load_dataset(cfg.dataset, "test", **load)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records = _train_pool(cfg, train, test, dev, out)
    manifest = _pool_manifest(cfg, train, records, time.perf_counter() - started, dev)
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def _train_pool(
    cfg: PretrainConfig, train: ImageDataset, test: ImageDataset, dev: torch.device, out: Path
) -> list[dict[str, Any]]:
    """Train and save the ``cfg.count`` networks, ``cfg.group_size`` at a time; one record per network."""
    net, _ = resolve_model(cfg.model, tuple(train.image_shape), train.num_classes)
    net.to(dev)  # a user network's constant buffers (parameters come from the inits)
    train_x, train_y = train.images.to(dev), train.labels.to(dev)
    test_x, test_y = test.images.to(dev), test.labels.to(dev)
    seeds = [cfg.seed + i for i in range(cfg.count)]
    records: list[dict[str, Any]] = []
    bar = tqdm(
        total=cfg.count,
        desc=f"pretrain {cfg.model} on {cfg.dataset}",
        unit="net",
        disable=not cfg.progress,
    )
    for first in range(0, cfg.count, cfg.group_size):
        group = seeds[first : first + cfg.group_size]
        inits = [init_params(net, "xavier", _init_generator(s)) for s in group]

        def on_step(step: int, total: int, first: int = first, size: int = len(group)) -> None:
            # Fractional networks done, so the bar moves during long groups too.
            bar.n = round(first + size * step / total, 2)
            bar.set_postfix_str(_postfix(records), refresh=False)
            if step % 50 == 0:
                bar.refresh()

        trained = train_networks(
            net, inits, train_x, train_y, group, epochs=cfg.epochs, batch_size=cfg.batch_size,
            lr=cfg.lr, method=cfg.method, on_step=on_step if cfg.progress else None,
        )  # fmt: skip
        accs = accuracies(net, trained, test_x, test_y)
        for offset, (s, params, acc) in enumerate(zip(group, trained, accs, strict=True)):
            index = first + offset
            split = "heldout" if index >= cfg.count - cfg.heldout else "train"
            file = NET_FILE.format(index)
            meta = {"dataset": cfg.dataset, "model": cfg.model, "seed": str(s), "split": split}
            save_tensors(out / file, params, meta)
            records.append(
                {"file": file, "seed": s, "split": split, "test_accuracy": round(acc, 4)}
            )
        bar.n = len(records)
        bar.set_postfix_str(_postfix(records), refresh=False)
        bar.refresh()
    bar.close()
    return records


def _pool_manifest(
    cfg: PretrainConfig,
    train: ImageDataset,
    records: list[dict[str, Any]],
    seconds: float,
    dev: torch.device,
) -> dict[str, Any]:
    """The pool's ``manifest.json``: source data and normalisation, recipe, and every network's record."""
    return {
        "kind": POOL_KIND,
        "version": __version__,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "in_shape": list(train.image_shape),
        "num_classes": train.num_classes,
        "resize": cfg.resize,
        "pad": cfg.pad,
        "channels": cfg.channels,
        "test_fraction": cfg.test_fraction,
        "mean": list(train.mean),
        "std": list(train.std),
        "normalisation": "per channel with the source data set's own train mean/std",
        "init_scheme": "xavier",
        "count": cfg.count,
        "heldout": cfg.heldout,
        "recipe": {
            "optimizer": "Adam",
            "lr": cfg.lr,
            "betas": list(PRETRAIN_BETAS),
            "schedule": "per-step cosine decay to 0",
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "method": cfg.method,
            "group_size": cfg.group_size,
            "seed": cfg.seed,
        },
        "train_seconds": round(seconds, 1),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "accuracy": _summary([r["test_accuracy"] for r in records]),
        "networks": records,
    }


def _summary(accs: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(accs), 4),
        "std": round(statistics.pstdev(accs), 4) if len(accs) > 1 else 0.0,
        "min": min(accs),
        "max": max(accs),
    }


def _postfix(records: Sequence[dict[str, Any]], extra: str = "") -> str:
    parts = [extra] if extra else []
    if records:
        parts.append(f"acc {statistics.fmean(r['test_accuracy'] for r in records):.2f}%")
    return ", ".join(parts)
