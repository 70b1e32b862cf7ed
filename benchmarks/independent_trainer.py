"""Re-measure a distilled set with a trainer that shares no code with datadistill's: does the number hold?

The field's protocol judges a set by training fresh networks on it with a standard recipe. Our evaluation
(`datadistill evaluate --protocol dataset`) is one implementation of that recipe; this script is another, written
from the recipe's description alone, as a user with a trainer of their own would: the set leaves the package
through `datadistill export` (a .npz of pixels), and a plain ``nn.Sequential`` ConvNet-3 (128 channels, instance
norm as ``GroupNorm(128, 128)``, 3 x [conv3x3, norm, ReLU, avgpool2], linear), PyTorch's default init, is
trained with ``torch.optim.SGD`` (lr 0.01, momentum 0.9, weight decay 5e-4), lr / 10 at epoch 150 of 300, shuffled
batches of 256, cross-entropy on the labels (or soft targets), no augmentation; accuracy on the full real test
split. Only the test images come through ``datadistill.load_dataset``, normalised with the set's mean and std
as the exported images are. Prints one row per network beside the set's recorded number and writes JSON.

    DATADISTILL_DATA=../shared/datasets python benchmarks/independent_trainer.py mnist-10-per-class \
        --networks 3 --json runs/independent.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from datadistill import DistilledData, load_dataset, load_pretrained
from datadistill.cli import checked_args, count_arg, run_script
from datadistill.export import export_set


def convnet3(channels: int, size: int, classes: int, width: int = 128) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [
            nn.Conv2d(channels if i == 0 else width, width, 3, padding=1),
            nn.GroupNorm(width, width),
            nn.ReLU(),
            nn.AvgPool2d(2),
        ]
        size //= 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * size * size, classes))


def train_and_test(arrays, test_x, test_y, seed: int, epochs: int) -> float:
    torch.manual_seed(seed)
    mean = torch.from_numpy(arrays["mean"]).view(-1, 1, 1)
    std = torch.from_numpy(arrays["std"]).view(-1, 1, 1)
    x = (torch.from_numpy(arrays["images"]) - mean) / std
    y = torch.from_numpy(arrays["targets"] if "targets" in arrays else arrays["labels"])
    net = convnet3(x.shape[1], x.shape[2], len(arrays["class_names"]))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    drop = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(256):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
        drop.step()
    with torch.no_grad():
        right = sum(
            int((net(xb).argmax(1) == yb).sum())
            for xb, yb in zip(test_x.split(1000), test_y.split(1000), strict=True)
        )
    return 100.0 * right / len(test_y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="a gallery name or a run folder")
    parser.add_argument("--networks", type=count_arg, default=3)
    parser.add_argument("--epochs", type=count_arg, default=300)
    parser.add_argument("--json", default="runs/independent.json")
    args = checked_args(parser)
    data = DistilledData.load(args.set) if Path(args.set).exists() else load_pretrained(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_set(data, Path(tmp) / "set.npz").path
        arrays = dict(np.load(exported))
    test = load_dataset(data.manifest["dataset"], "test")
    if not np.allclose(test.mean, arrays["mean"]) or not np.allclose(test.std, arrays["std"]):
        raise SystemExit(
            f"the test split's normalisation differs from the set's ({test.mean} vs {arrays['mean']})"
        )
    recorded = data.manifest.get("accuracy") or {}
    rows = []
    for seed in range(args.networks):
        started = time.perf_counter()
        acc = train_and_test(arrays, test.images, test.labels, seed, args.epochs)
        rows.append({"network": seed, "accuracy": acc, "seconds": time.perf_counter() - started})
        print(f"| {seed} | {acc:.2f} | {rows[-1]['seconds']:.0f} s |", flush=True)
        accs = [r["accuracy"] for r in rows]
        result = {
            "set": args.set,
            "images": len(arrays["images"]),
            "recipe": f"independent ConvNet-3: SGD 0.01 m0.9 wd5e-4, /10 at {args.epochs // 2}, "
            f"batch 256, {args.epochs} epochs, no augmentation",
            "accuracies": accs,
            "mean": statistics.mean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "recorded": {k: recorded.get(k) for k in ("accuracy_mean", "accuracy_std", "n_models")},
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    mean, std, n = (recorded.get(k) for k in ("accuracy_mean", "accuracy_std", "n_models"))
    theirs = (
        f"{mean:.2f} ± {std:.2f} over {n}" if mean is not None and std is not None else "nothing"
    )
    print(
        f"independent trainer: {result['mean']:.2f} ± {result['std']:.2f} over {len(accs)} networks; "
        f"datadistill evaluate recorded {theirs}"
    )


if __name__ == "__main__":
    run_script(main)
