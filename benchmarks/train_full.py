"""Train a network normally on a full training set: the "full data" upper bound of the paper.

Wang et al. 2018 compare distilled data against a LeNet trained on all of MNIST (≈ 99%) and an
AlexCifarNet trained on all of CIFAR-10 (≈ 80%). This script measures that bound with our own
models and data pipeline, using the paper's Xavier initialisation and a plain recipe: Adam with
a cosine-decayed learning rate, no augmentation.

Usage:
    DATADISTILL_DATA=/path/to/datasets python benchmarks/train_full.py --json runs/full.json

Prints one row per epoch and writes a JSON record (accuracy per epoch, final accuracy, seconds,
threads, machine). Imports only the public API of datadistill.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import datadistill
from datadistill.cli import checked_args, count_arg, run_script, seed_arg
from datadistill.data import load_dataset
from datadistill.models import INIT_SCHEMES, build_model, init_params, list_models


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", help="data set name (default: mnist)")
    p.add_argument("--model", default="lenet", choices=list_models(), help="default: lenet")
    p.add_argument("--init", default="xavier", choices=INIT_SCHEMES, help="default: xavier")
    p.add_argument("--epochs", type=count_arg, default=12, help="passes over the training set")
    p.add_argument("--batch-size", type=count_arg, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam lr, cosine-decayed to 0")
    p.add_argument("--seed", type=seed_arg, default=0, help="seeds the init and the shuffling")
    p.add_argument("--data-dir", default=None, help="default: $DATADISTILL_DATA or the cache")
    p.add_argument(
        "--threads", type=count_arg, default=None, help="torch threads (default: torch's)"
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results here")
    return checked_args(p, argv)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` [N, C, H, W] that ``model`` classifies as ``labels`` [N]."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size])  # [B, num_classes]
        correct += (logits.argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / len(images)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    t_load = time.perf_counter()
    train = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    test = load_dataset(args.dataset, "test", data_dir=args.data_dir)
    load_seconds = time.perf_counter() - t_load

    model = build_model(args.model, train.image_shape, train.num_classes)
    model.load_state_dict(init_params(model, args.init, gen))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(train.labels) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    # Per-step cosine decay from lr to 0: no warm-up needed for Adam on a net this small.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    )

    print(
        f"{args.model} on {args.dataset}: {len(train.labels)} train / {len(test.labels)} test "
        f"images {tuple(train.image_shape)}, {sum(p.numel() for p in model.parameters())} "
        f"params, {torch.get_num_threads()} threads"
    )
    header = f"{'epoch':>5} {'lr':>9} {'train loss':>10} {'train acc':>9} {'test acc':>8} {'s':>6}"
    print(header)
    print("-" * len(header))

    history: list[dict] = []
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        lr_now = opt.param_groups[0]["lr"]
        model.train()
        order = torch.randperm(len(train.labels), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            x, y = train.images[idx], train.labels[idx]  # [B, C, H, W], [B]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        test_acc = accuracy(model, test.images, test.labels)
        row = {
            "epoch": epoch,
            "lr": lr_now,
            "train_loss": loss_sum / len(order),
            "train_acc": correct / len(order),
            "test_acc": test_acc,
            "seconds": time.perf_counter() - t_epoch,
        }
        history.append(row)
        print(
            f"{epoch:>5} {lr_now:>9.2e} {row['train_loss']:>10.4f} {row['train_acc']:>9.2%} "
            f"{test_acc:>8.2%} {row['seconds']:>6.1f}"
        )
    train_seconds = time.perf_counter() - t_train

    result = {
        "benchmark": "train_full",
        "dataset": args.dataset,
        "model": args.model,
        "init": args.init,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "final_test_acc": history[-1]["test_acc"] if history else None,
        "test_acc_per_epoch": [r["test_acc"] for r in history],
        "history": history,
        "train_seconds": train_seconds,
        "load_seconds": load_seconds,
        "threads": torch.get_num_threads(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "datadistill": datadistill.__version__,
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(
        f"final test accuracy {result['final_test_acc']:.2%} after {args.epochs} epochs; "
        f"training {train_seconds:.0f} s (+ {load_seconds:.1f} s loading)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    run_script(main)
