"""Pools of pre-trained networks on disk: reading a pool folder written by ``datadistill pretrain``.

Storage only (no training): ``setting`` loads pools from here, so building a run's init distribution does not
import the pre-training experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from datadistill.artifacts import MANIFEST_FILE, load_tensors
from datadistill.types import Params

POOL_KIND = "datadistill-pretrained-pool"
NET_FILE = "net_{:04d}.safetensors"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a pool folder written by ``pretrain``.

    Raises:
        FileNotFoundError: the folder or its manifest is missing.
        ValueError: the manifest is not a pool's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"pre-trained pool {folder} does not exist: create one with "
            "`datadistill pretrain --dataset NAME --model NAME --count N --out DIR`"
        )
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a pre-trained pool: {MANIFEST_FILE} is missing (a `datadistill pretrain` "
            "run writes it when all networks are trained; an interrupted run leaves none)"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != POOL_KIND:
        raise ValueError(
            f"{path} is not a pre-trained pool's manifest (kind {manifest.get('kind')!r}, expected "
            f"{POOL_KIND!r}); pass the --out folder of `datadistill pretrain`"
        )
    return manifest


def load_pool(
    folder: str | Path,
    net: nn.Module,
    *,
    spec: str | None = None,
    in_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> tuple[list[Params], list[Params]]:
    """Load a pool for ``net``: ``(training part, held-out part)``, each a list of parameter dicts.

    The dicts have the names, shapes and dtype of ``net.named_parameters()`` and live on the CPU. The training
    part keeps the pool's order, so ``pool[0]`` is ``net_0000`` (the ``pretrained-fixed`` network).

    Args:
        folder: a pool folder written by ``pretrain``.
        net: the network the pool will initialise (its architecture and input shape are checked).
        spec, in_shape, num_classes: what ``net`` is, for a network of your own (``module:factory``), which
            does not carry them as a registered one does; recorded by ``pretrain`` as the pool's model.

    Returns:
        ``(pool, heldout)``.

    Raises:
        FileNotFoundError: no such folder, no manifest, or a listed network file is missing.
        ValueError: the pool was trained for another architecture, input shape or number of classes (the
            message names the pool's model and source data set and what was requested), or a file does not
            hold the parameters ``net`` needs.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    arch = getattr(net, "arch", None) or spec or type(net).__name__.lower()
    requested = (
        arch,
        tuple(getattr(net, "in_shape", None) or in_shape or ()),
        getattr(net, "num_classes", None) or num_classes,
    )
    have = (manifest["model"], tuple(manifest["in_shape"]), manifest["num_classes"])
    if requested != have:
        raise ValueError(
            f"pre-trained pool {folder} holds {have[0]} networks trained on {manifest['dataset']} "
            f"(inputs {have[1]}, {have[2]} classes) but the run needs {requested[0]} for inputs "
            f"{requested[1]} with {requested[2]} classes: pre-train a pool with that --model, or give the "
            f"target data the pool's image shape (e.g. --resize {have[1][1]}, --channels {have[1][0]})"
        )
    expected = {name: p for name, p in net.named_parameters()}
    pool: list[Params] = []
    held: list[Params] = []
    for record in manifest["networks"]:
        path = folder / record["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {folder / MANIFEST_FILE} but missing")
        tensors = load_tensors(path)
        if tensors.keys() != expected.keys():
            raise ValueError(
                f"{path} does not fit {arch}: parameters {sorted(tensors.keys() ^ expected.keys())} "
                "are missing or extra; pre-train the pool again for this model"
            )
        bad = [n for n, p in expected.items() if tensors[n].shape != p.shape]
        if bad:
            detail = ", ".join(
                f"{n} {tuple(tensors[n].shape)} vs {tuple(expected[n].shape)}" for n in bad
            )
            raise ValueError(f"{path} does not fit {arch}: shapes differ ({detail})")
        params = {n: tensors[n].to(expected[n].dtype) for n in expected}
        (held if record["split"] == "heldout" else pool).append(params)
    if not pool:
        raise ValueError(f"pre-trained pool {folder} has no networks in its training part")
    return pool, held
