"""The paper's Table 2 (Wang et al. 2018, §3.5): adapting pre-trained LeNets across digit data sets.

For each direction SOURCE→TARGET (MNIST→USPS and USPS→MNIST, USPS brought to 28×28), a pool of LeNets is
pre-trained on the SOURCE (`datadistill.experiments.pretrain`: a training part and a held-out part) and these rows are
measured on the TARGET test set, for the fixed pre-trained network (``net_0000``, column "fixed") and for the
held-out pre-trained networks (column "random", mean ± std; never networks seen in distillation or tuning):

- distilled: ``datadistill.distill(dataset=TARGET, init="pretrained-fixed" | "pretrained-random",
  pretrained=POOL, steps=10, epochs=3, init_images="real")`` then ``datadistill.evaluate(run, models=H)``;
- random real / optimised real / k-means / average real TARGET images (``datadistill.experiments.baselines``) replayed with
  the same 10 steps × 3 epochs and one lr tuned on a validation split of the TARGET training set (tuned from
  networks of the pool's training part, evaluated on the held-out ones);
- no adaptation: the pre-trained networks as they are;
- fine-tuning on the full TARGET training set (Adam, cosine-decayed lr; ``datadistill.experiments.pretrain.train_networks``).

Each data set is normalised with its own train mean/std (as the reference code does). USPS digits fill their
16×16 frame while MNIST digits sit in a 20×20 box with a 4-pixel margin, so by default USPS is resized to 20×20
and padded with 4 pixels of background to 28×28 (``--usps-geometry mnist-box``); ``--usps-geometry resize28``
gives the paper's plain resize to 28×28 (whose digits are larger than MNIST's). The geometry is recorded in the
JSON and Markdown, and names the USPS pool and run folders. Pools, recipe and times are in the JSON. Prints
Markdown and writes it (``--md``) and JSON (``--json``) after every section, so a run cut short keeps what it
finished.

Usage:
    DATADISTILL_DATA=/work/shared/datasets flock /tmp/datadistill-bench.lock \\
        python benchmarks/table2.py --json runs/table2/table2.json --md runs/table2/table2.md
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import datadistill
from datadistill.cli import checked_args, count_arg, run_script
from datadistill.data import get_dataset_spec, load_dataset
from datadistill.evaluate import accuracy, evaluate_steps
from datadistill.experiments.baselines import (
    arrange,
    average_real,
    kmeans_centroids,
    random_real,
    replay_accuracy,
    split_train,
    tune_lr,
)
from datadistill.experiments.pretrain import pretrain, train_networks
from datadistill.pools import read_manifest
from datadistill.setting import make_setting
from datadistill.unroll import Steps
from published import PAPER_TABLE2

ROWS = (
    "distilled",
    "random real",
    "optimized real",
    "k-means",
    "average real",
    "no adaptation",
    "full target",
)
KINDS = ("fixed", "random")
STEPS, EPOCHS = 10, 3  # the paper's budget: 10 steps × 10 images (one per class) × 3 epochs
# How USPS (16×16) is brought to MNIST's 28×28: load_dataset's resize, then pad (pixels per side).
USPS_GEOMETRIES: dict[str, dict[str, int | None]] = {
    "mnist-box": {"resize": 20, "pad": 4},  # digits in a 20×20 box, 4-pixel margin, as MNIST's
    "resize28": {"resize": 28, "pad": None},  # the paper's plain resize; digits fill the frame
}
GEOMETRY_TEXT = {
    "mnist-box": "USPS bilinearly resized to 20x20 and padded with 4 background pixels to 28x28",
    "resize28": "USPS bilinearly resized to 28x28",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=["mnist:usps", "usps:mnist"], help="SOURCE:TARGET")
    p.add_argument(
        "--pool-train", type=count_arg, default=20, help="pool networks for distillation"
    )
    p.add_argument(
        "--pool-heldout",
        type=count_arg,
        default=10,
        help="held-out pool networks (>= 1: they measure)",
    )
    p.add_argument(
        "--pretrain-epochs",
        nargs="+",
        default=["mnist=10", "usps=30"],
        help="epochs per source data set (paper: 40 MNIST, 130 USPS at lr 2e-4; 10 / 30 measured best here)",
    )
    p.add_argument(
        "--iterations", type=count_arg, default=300, help="distillation iterations per run"
    )
    p.add_argument(
        "--inits-per-iteration", type=count_arg, default=2, help="pretrained-random only"
    )
    p.add_argument("--finetune-models", type=count_arg, default=5, help="held-out nets fine-tuned")
    p.add_argument(
        "--finetune-epochs",
        nargs="+",
        default=["mnist=1", "usps=10"],
        help="epochs of the full-target row per TARGET (USPS: 10 reach 96.4, 3 only 95.5)",
    )
    p.add_argument("--tune-models", type=count_arg, default=3, help="pool nets per lr when tuning")
    p.add_argument(
        "--candidates", type=count_arg, default=10, help="random sets for optimized real"
    )
    p.add_argument(
        "--val-size", type=count_arg, default=2000, help="TARGET train images for tuning"
    )
    p.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument(
        "--usps-geometry",
        choices=list(USPS_GEOMETRIES),
        default="mnist-box",
        help="mnist-box: resize USPS to 20 and pad by 4 (MNIST's digit box); resize28: the paper's",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep the rows already in --json; measure the rest"
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("runs/table2"), help="pools and runs go here")
    p.add_argument("--json", type=Path, default=Path("runs/table2/table2.json"))
    p.add_argument("--md", type=Path, default=Path("runs/table2/table2.md"))
    return checked_args(p, argv)


def _per_dataset(items: list[str]) -> dict[str, int]:
    if not all(
        re.fullmatch(r"[a-z0-9-]+=[0-9]+", item) and int(item.split("=")[1]) > 0 for item in items
    ):
        raise ValueError(
            f"--pretrain-epochs takes NAME=EPOCHS pairs, epochs >= 1 (e.g. mnist=10), got {items}"
        )
    return {k: int(v) for k, v in (item.split("=", 1) for item in items)}


def _check_pairs(args: argparse.Namespace) -> None:
    """Every --pairs entry is SOURCE:TARGET of known data sets with pre-training epochs, before any pool."""
    epochs = _per_dataset(args.pretrain_epochs)
    for pair in args.pairs:
        names = pair.split(":")
        if len(names) != 2 or not all(names):
            raise ValueError(f"--pairs takes SOURCE:TARGET (e.g. mnist:usps), got {pair!r}")
        for name in names:
            get_dataset_spec(name)  # an unknown name: one line listing the registered ones
        if names[0] not in epochs:
            raise ValueError(
                f"--pretrain-epochs has no entry for {names[0]} (add {names[0]}=EPOCHS)"
            )


def _geometry(name: str, args: argparse.Namespace) -> dict[str, int | None]:
    """``resize``/``pad`` for ``load_dataset`` and friends: USPS (16×16) next to MNIST (28×28)."""
    if name != "usps":
        return {"resize": None, "pad": None}
    return dict(USPS_GEOMETRIES[args.usps_geometry])


def _tag(names: tuple[str, ...], args: argparse.Namespace) -> str:
    """Folder suffix naming the USPS geometry; none for resize28 (the names before the option)."""
    if "usps" not in names or args.usps_geometry == "resize28":
        return ""
    return f"-{args.usps_geometry}"


def _stats(accs: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(accs),
        "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "n": len(accs),
        "accuracies": accs,
    }


def _cell(entry: dict[str, Any] | None, kind: str) -> str:
    if entry is None:
        return "—"
    return (
        f"{entry['mean']:.1f}" if kind == "fixed" else f"{entry['mean']:.1f} ± {entry['std']:.1f}"
    )


def _paper_cell(pair: str, row: str, kind: str) -> str:
    value = PAPER_TABLE2.get(pair, {}).get((row, kind))
    if value is None:
        return ""
    mean, std = value
    return f"{mean}" if std is None else f"{mean} ± {std}"


def markdown(results: dict[str, Any]) -> str:
    geometry = results.get("usps_geometry", "resize28")  # runs before the option: plain resize
    lines = [f"USPS geometry: {GEOMETRY_TEXT[geometry]} (`--usps-geometry {geometry}`).", ""]
    for pair, res in results["pairs"].items():
        pool = res.get("pool", {})
        lines += [
            f"### {pair.upper()} (LeNet; pool {pool.get('train', '?')} + {pool.get('heldout', '?')} "
            "held out)",
            "",
            "| row | ours, fixed pre-trained | paper | ours, random pre-trained (held out) | paper |",
            "|---|---|---|---|---|",
        ]
        for row in ROWS:
            cells = res["rows"].get(row, {})
            lines.append(
                f"| {row} | {_cell(cells.get('fixed'), 'fixed')} | {_paper_cell(pair, row, 'fixed')} | "
                f"{_cell(cells.get('random'), 'random')} | {_paper_cell(pair, row, 'random')} |"
            )
        lines.append("")
    return "\n".join(lines)


def _write(results: dict[str, Any], args: argparse.Namespace) -> None:
    for path in (args.json, args.md):
        path.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    args.md.write_text(markdown(results))


def _pool(source: str, args: argparse.Namespace, epochs: int) -> tuple[Path, dict[str, Any]]:
    """Pre-train (or reuse) the SOURCE pool; returns its folder and manifest."""
    folder = args.out / f"pool-{source}{_tag((source,), args)}-lenet"
    geometry = _geometry(source, args)
    if (folder / "manifest.json").exists():
        manifest = read_manifest(folder)
        want = (args.pool_train + args.pool_heldout, args.pool_heldout, epochs, geometry)
        have = (
            manifest["count"],
            manifest["heldout"],
            manifest["recipe"]["epochs"],
            {"resize": manifest.get("resize"), "pad": manifest.get("pad")},
        )
        if want != have:
            raise SystemExit(f"{folder} holds another pool {have}, not {want}: delete it or --out")
        return folder, manifest
    manifest = pretrain(
        dataset=source,
        model="lenet",
        count=args.pool_train + args.pool_heldout,
        heldout=args.pool_heldout,
        epochs=epochs,
        **geometry,
        out=folder,
        data_dir=args.data_dir,
        device=args.device,
    )
    return folder, manifest


def run_pair(source: str, target: str, args: argparse.Namespace, res: dict[str, Any], save) -> None:
    """Fill ``res`` with the rows of SOURCE→TARGET, calling ``save()`` after each section."""
    rows: dict[str, dict[str, Any]] = res.setdefault("rows", {})
    pre_epochs = _per_dataset(args.pretrain_epochs)[source]
    started = time.perf_counter()
    pool_dir, manifest = _pool(source, args, pre_epochs)
    res["pool"] = {
        "folder": str(pool_dir),
        "train": manifest["count"] - manifest["heldout"],
        "heldout": manifest["heldout"],
        "recipe": manifest["recipe"],
        "train_seconds": manifest["train_seconds"],
        "source_test_accuracy": manifest["accuracy"],
    }
    res.setdefault("seconds", {}).setdefault("pool", round(time.perf_counter() - started, 1))
    save()

    geometry = _geometry(target, args)
    load = dict(data_dir=args.data_dir, **geometry)
    train = load_dataset(target, "train", **load)
    test = load_dataset(target, "test", **load)
    dev = torch.device(args.device)
    test_x, test_y = test.images.to(dev), test.labels.to(dev)
    settings = {
        kind: make_setting(
            dataset=target,
            model="lenet",
            init=f"pretrained-{kind}",
            pretrained=str(pool_dir),
            **geometry,
            data_dir=args.data_dir,
            image_shape=train.image_shape,
            num_classes=train.num_classes,
        )
        for kind in KINDS
    }
    model = settings["fixed"].model.to(dev)
    inits = settings["random"].inits
    fixed_net, heldout = inits.pool[0], list(inits.heldout)
    n_eval = {"fixed": 1, "random": len(heldout)}

    if _todo("no adaptation", rows, args):
        t = time.perf_counter()
        rows["no adaptation"] = {
            "fixed": _stats([accuracy(model, _to(fixed_net, dev), test_x, test_y)]),
            "random": _stats([accuracy(model, _to(p, dev), test_x, test_y) for p in heldout]),
        }
        res["seconds"]["no adaptation"] = round(time.perf_counter() - t, 1)
        save()

    if _todo("distilled", rows, args):
        rows.setdefault("distilled", {})
        for kind in KINDS:
            t = time.perf_counter()
            run_dir = args.out / f"{source}-to-{target}{_tag((source, target), args)}-{kind}"
            data = datadistill.distill(
                dataset=target,
                model="lenet",
                init=f"pretrained-{kind}",
                pretrained=str(pool_dir),
                **geometry,
                steps=STEPS,
                epochs=EPOCHS,
                init_images="real",
                iterations=args.iterations,
                schedule="step",
                decay_every=max(1, args.iterations // 3),
                inits_per_iteration=1 if kind == "fixed" else args.inits_per_iteration,
                eval_models=1,
                eval_every=args.iterations,
                checkpoint_every=args.iterations,
                data_dir=args.data_dir,
                device=args.device,
                out=str(run_dir),
                resume=(run_dir / "checkpoint.safetensors").exists(),
                progress=False,
            )
            result = datadistill.evaluate(
                run_dir, models=n_eval[kind], data_dir=args.data_dir, progress=False
            )
            entry = _stats(result.accuracies)
            entry["before"] = result.accuracy_before_mean
            entry["lrs"] = [float(data.lrs.min()), float(data.lrs.max())]
            entry["run"] = str(run_dir)
            rows["distilled"][kind] = entry
            res["seconds"][f"distilled {kind}"] = round(time.perf_counter() - t, 1)
            save()

    if any(
        _todo(r, rows, args) for r in ("random real", "optimized real", "k-means", "average real")
    ):
        _baseline_rows(train, settings, test_x, test_y, n_eval, args, res, save)

    if _todo("full target", rows, args):
        t = time.perf_counter()
        epochs = _per_dataset(args.finetune_epochs)[target]
        x, y = train.images.to(dev), train.labels.to(dev)
        nets = [fixed_net] + heldout[: args.finetune_models]
        seeds = list(range(len(nets)))
        tuned = train_networks(model, nets, x, y, seeds, epochs=epochs)
        accs = [accuracy(model, _to(p, dev), test_x, test_y) for p in tuned]
        rows["full target"] = {"fixed": _stats(accs[:1]), "random": _stats(accs[1:])}
        res["full_target_recipe"] = f"Adam lr 1e-3 cosine, batch 128, {epochs} epoch(s)"
        res["seconds"]["full target"] = round(time.perf_counter() - t, 1)
        save()


def _todo(row: str, rows: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether ``row`` is asked for and not already measured (for both kinds) by a run being resumed."""
    return row in args.only and not all(kind in rows.get(row, {}) for kind in KINDS)


def _to(params, device):
    return {k: v.to(device) for k, v in params.items()}


def _baseline_rows(train, settings, test_x, test_y, n_eval, args, res, save) -> None:
    """Random / optimised / k-means / average real TARGET images, replayed with one tuned lr."""
    rows = res["rows"]
    dev = test_x.device
    k = train.num_classes
    fit, val = split_train(len(train.labels), args.val_size, seed=0)
    x, y = train.images[fit], train.labels[fit]
    val_x, val_y = train.images[val].to(dev), train.labels[val].to(dev)
    grid = tuple(float(v) for v in np.logspace(-3, 0, 7))  # 1e-3 … 1, half-decades
    gen = torch.Generator().manual_seed(0)
    # Tuning networks: the fixed one, or networks of the pool's TRAINING part (never the held-out ones).
    pool = settings["random"].inits.pool
    tune_nets = {
        "fixed": [pool[0]],
        "random": [pool[i % len(pool)] for i in range(1, args.tune_models + 1)],
    }
    sets: dict[str, Any] = {"random real": random_real(x, y, k, STEPS, 1, gen)}
    if _todo("k-means", rows, args):
        sets["k-means"] = kmeans_centroids(x, y, k, STEPS, 1, seed=0)
    if _todo("average real", rows, args):
        sets["average real"] = average_real(x, y, k, STEPS, 1)
    for name in ("random real", "optimized real", "k-means", "average real"):
        if not _todo(name, rows, args):
            continue
        t = time.perf_counter()
        rows[name] = {}
        for kind in KINDS:
            nets = [_to(p, dev) for p in tune_nets[kind]]
            model = settings[kind].model
            if name == "optimized real":
                images, labels, lr, val_acc = _optimized_real(
                    model, x, y, k, nets, val_x, val_y, grid, args.candidates
                )
            else:
                images, labels = arrange(sets[name], STEPS, 1)
                images, labels = images.to(dev), labels.to(dev)
                lr, val_acc = tune_lr(model, images, labels, EPOCHS, nets, val_x, val_y, grid)
            lrs = torch.full((STEPS * EPOCHS,), lr, device=dev)
            after, _ = evaluate_steps(
                model,
                Steps(images, labels, lrs),
                settings[kind].inits,
                test_x,
                test_y,
                n_eval[kind],
            )
            rows[name][kind] = {**_stats(after), "lr": lr, "val_accuracy": val_acc}
        res["seconds"][name] = round(time.perf_counter() - t, 1)
        save()


def _optimized_real(model, x, y, k, nets, val_x, val_y, grid, candidates):
    """The best of ``candidates`` random real sets on the validation split (scored with the first set's
    tuned lr), with its own tuned lr."""
    gen = torch.Generator().manual_seed(1)
    dev = val_x.device
    best, best_acc, lr = None, -1.0, None
    for _ in range(candidates):
        images, labels = arrange(random_real(x, y, k, STEPS, 1, gen), STEPS, 1)
        images, labels = images.to(dev), labels.to(dev)
        if lr is None:
            lr, _ = tune_lr(model, images, labels, EPOCHS, nets, val_x, val_y, grid)
        acc = replay_accuracy(model, images, labels, lr, EPOCHS, nets, val_x, val_y)
        if acc > best_acc:
            best, best_acc = (images, labels), acc
    images, labels = best
    lr, val_acc = tune_lr(model, images, labels, EPOCHS, nets, val_x, val_y, grid)
    return images, labels, lr, val_acc


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "benchmark": "benchmarks/table2.py",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {args.device}",
        "torch": torch.__version__,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "protocol": (
            f"LeNet, {STEPS} steps x 10 images x {EPOCHS} epochs on the TARGET; fixed = the pool's "
            "net_0000, random = its held-out networks (mean ± std); each data set normalised with its "
            f"own train mean/std; {GEOMETRY_TEXT[args.usps_geometry]}"
        ),
        "usps_geometry": args.usps_geometry,
        "usps_load_options": USPS_GEOMETRIES[args.usps_geometry],
        "pairs": {},
    }
    if args.resume and args.json.exists():
        previous = json.loads(args.json.read_text())
        had = previous.get("usps_geometry", "resize28")  # written before the option: plain resize
        if had != args.usps_geometry:
            raise SystemExit(
                f"{args.json} holds rows measured with --usps-geometry {had}, not "
                f"{args.usps_geometry}: rerun with --usps-geometry {had}, or give another --json"
            )
        results["pairs"] = previous["pairs"]
        results["resumed_from"] = previous["date"]
    _check_pairs(args)
    started = time.perf_counter()
    for pair in args.pairs:
        source, target = pair.split(":")
        res = results["pairs"].setdefault(f"{source}→{target}", {})
        run_pair(source, target, args, res, lambda: _write(results, args))
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        _write(results, args)
    print(markdown(results))
    print(f"total {results['total_seconds']:.0f} s; wrote {args.json} and {args.md}")
    return results


if __name__ == "__main__":
    run_script(main)
