"""Ceiling of adaptation: fine-tune pre-trained networks on the WHOLE target training set, over a grid of recipes.

Table 2's "full target" row uses one recipe. This sweeps the Adam lr and the number of epochs, so that a
distilled-adaptation bar can be compared with the best that full supervision gives the same networks. The best
cell is picked on the test set, so it is an optimistic upper bound, not a result to compare like for like.

    DATADISTILL_DATA=../shared/datasets python benchmarks/finetune_ceiling.py \
        --pretrained runs/pool-mnist-lenet --target usps --json runs/ceiling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import datadistill
from datadistill.cli import checked_args, count_arg, run_script
from datadistill.data import load_dataset
from datadistill.evaluate import accuracy
from datadistill.experiments.pretrain import train_networks
from datadistill.setting import make_setting

# the sibling benchmark's USPS geometries, so that both place USPS digits alike
from table2 import USPS_GEOMETRIES


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", required=True, help="pool folder from `datadistill pretrain`")
    p.add_argument("--target", default="usps", help="target data set")
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3], help="peak Adam lrs")
    p.add_argument(
        "--epochs", type=count_arg, nargs="+", default=[10, 30], help="fine-tuning epochs"
    )
    p.add_argument(
        "--heldout", type=int, default=3, help="held-out pool nets fine-tuned besides net 0"
    )
    p.add_argument(
        "--usps-geometry",
        choices=list(USPS_GEOMETRIES),
        default="mnist-box",
        help="as in table2.py: mnist-box resizes USPS to 20 and pads by 4; resize28 is the paper's",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=Path, default=Path("runs/ceiling.json"))
    args = checked_args(p, argv)

    geometry = USPS_GEOMETRIES[args.usps_geometry] if args.target == "usps" else {}
    train = load_dataset(args.target, "train", data_dir=args.data_dir, **geometry)
    test = load_dataset(args.target, "test", data_dir=args.data_dir, **geometry)
    setting = make_setting(
        dataset=args.target,
        model="lenet",
        init="pretrained-random",
        pretrained=args.pretrained,
        data_dir=args.data_dir,
        image_shape=train.image_shape,
        num_classes=train.num_classes,
        **geometry,
    )
    model, pool = setting.model, setting.inits
    # the fixed cell's network first, then held-out ones
    nets = [pool.pool[0]] + list(pool.heldout)[: args.heldout]
    res = {
        "pretrained": args.pretrained,
        "target": args.target,
        "geometry": geometry,
        "networks": "net 0 of the pool (the fixed pre-trained cell's) + the first held-out nets",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "version": datadistill.__version__,
        "cells": [],
    }
    before = [accuracy(model, net, test.images, test.labels) for net in nets]
    res["before"] = before
    print(f"before fine-tuning: net 0 {before[0]:.2f}, held out {statistics.fmean(before[1:]):.2f}")
    print(
        "| epochs | Adam lr | net 0 | held out (mean ± std) | seconds |\n|---:|---:|---:|---|---:|"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for epochs in args.epochs:
        for lr in args.lrs:
            started = time.perf_counter()
            tuned = train_networks(
                model,
                nets,
                train.images,
                train.labels,
                list(range(len(nets))),
                epochs=epochs,
                lr=lr,
            )
            accs = [accuracy(model, net, test.images, test.labels) for net in tuned]
            held = accs[1:]
            cell = {
                "epochs": epochs,
                "lr": lr,
                "net0": accs[0],
                "heldout_mean": statistics.fmean(held) if held else None,
                "heldout_std": statistics.pstdev(held) if len(held) > 1 else 0.0,
                "accuracies": accs,
                "seconds": round(time.perf_counter() - started, 1),
            }
            res["cells"].append(cell)
            # after every cell, so that a run cut short keeps what it measured
            args.json.write_text(json.dumps(res, indent=2))
            spread = f"{cell['heldout_mean']:.2f} ± {cell['heldout_std']:.2f}" if held else "—"
            print(
                f"| {epochs} | {lr:g} | {accs[0]:.2f} | {spread} | {cell['seconds']} |", flush=True
            )
    best = max(res["cells"], key=lambda c: c["net0"])
    print(
        f"best for net 0 (picked on the test set): {best['net0']:.2f} ({best['epochs']} epochs, lr {best['lr']:g})"
    )


if __name__ == "__main__":
    run_script(main)
