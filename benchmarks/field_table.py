"""The field's table: distil MNIST and Fashion-MNIST at 1 and 10 images per class, train fresh networks on them.

For every cell it distils with the cell's preset (``configs/<data>_<k>_per_class.yaml``: ConvNet-3 of width 32,
20 unrolled momentum-SGD updates on all the images from a fresh init, one learned lr, hard labels, real-image
start; the 1-per-class presets with ``--formation 2``) within ``--minutes``, then trains
``--models`` fresh ConvNet-3 (128 channels) with the field's recipe (``evaluate.FieldRecipe``) and reports
mean ± std on the full test set, beside the same trainer on random real images (k per class; the
``--cross-arch`` networks too) and the published rows (``benchmarks/published.py``). A finished run folder under
``--out`` is evaluated, not distilled again.
``--nproc 2`` distils each cell with ``torchrun`` over two processes of one thread each: one fresh init each
per iteration, their meta-gradients averaged, so both cores of a 2-core machine serve one cell. ``--device cuda``
distils and evaluates every cell on the GPU.

    DATADISTILL_DATA=../shared/datasets python benchmarks/field_table.py --minutes 28 --out runs/field \
        --json runs/field_table.json [--cells mnist:10 fashion-mnist:1] [--cross-arch lenet mlp resnet18]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import datadistill
from datadistill import DistillConfig, DistilledData, load_dataset
from datadistill.cli import checked_args, count_arg, refuse_started_runs, run_script
from datadistill.config import (
    AUGMENTATIONS,
    load_config,
    parse_assignments,
    positive_int,
    positive_number,
    save_config,
)
from datadistill.distributed import resolve_device
from datadistill.evaluate import EvalResult, FieldRecipe, evaluate_as_dataset
from datadistill.formation import encode
from datadistill.models import get_model_spec
from published import FIELD, FIELD_BARS

PRESETS = {"mnist": "mnist", "fashion-mnist": "fashion"}


def random_real(run: DistilledData, per_class: int, seed: int) -> DistilledData:
    """``per_class`` random real training images of every class, as a set the same trainer can use; for a
    ``--formation F`` run, F² real images packed into each stored image (``formation.encode``), the same
    storage as the run's."""
    train = load_dataset(run.manifest["dataset"], "train")
    tiles = run.formation**2
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(train.num_classes):
        pool = (train.labels == c).nonzero().squeeze(1)
        picks.append(pool[torch.randperm(len(pool), generator=gen)[: per_class * tiles]])
    index = torch.cat(picks)
    images = encode(train.images[index].float(), run.formation)
    manifest = {**run.manifest, "learn_labels": False, "label_targets": None}
    return DistilledData(
        images.unsqueeze(0), train.labels[index][::tiles].unsqueeze(0), torch.ones(1), manifest
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cells", nargs="+", default=["mnist:10", "mnist:1", "fashion-mnist:10", "fashion-mnist:1"]
    )
    parser.add_argument("--minutes", type=float, default=28.0, help="distillation budget per cell")
    parser.add_argument("--models", type=count_arg, default=5, help="evaluation networks per row")
    parser.add_argument("--epochs", type=count_arg, default=300)
    parser.add_argument(
        "--jobs",
        type=count_arg,
        default=1,
        help="evaluation networks trained at once, one CPU process each (evaluate --jobs)",
    )
    parser.add_argument("--augment", choices=AUGMENTATIONS, default="none")
    parser.add_argument(
        "--cross-arch",
        nargs="*",
        default=[],
        help="also train these on mnist:10 (and on its random real images)",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the random-real-images row")
    parser.add_argument(
        "--real-only",
        action="store_true",
        help="only the random-real row of each cell, for a run folder already under --out",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override preset settings in every cell, e.g. --set unroll=50 window=25 (YAML values; strings as given)",
    )
    parser.add_argument(
        "--nproc",
        type=count_arg,
        default=1,
        help="distil each cell with torchrun over N processes (one fresh init each per iteration, "
        "meta-gradients averaged): N = 2 puts both cores of a 2-core machine on one cell",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu | cuda | cuda:N: where every cell distils and its evaluation networks train",
    )
    parser.add_argument("--out", default="runs/field")
    parser.add_argument("--json", default="runs/field_table.json")
    args = checked_args(parser)
    if args.real_only and args.no_real:
        parser.error("--real-only and --no-real leave nothing to measure: drop one")
    if args.nproc < 1:
        parser.error(f"--nproc takes a number of processes of 1 or more, got {args.nproc}")

    try:  # every bad flag stops here, not after an hour of distillation
        recipe = FieldRecipe(epochs=args.epochs, augment=args.augment)
        positive_int("models", args.models)
        positive_int("jobs", args.jobs)
        positive_number("minutes", args.minutes)
        for model in args.cross_arch:
            get_model_spec(model)
        overrides = {"device": args.device, **parse_assignments(DistillConfig, args.set)}
        for cell in args.cells:  # every cell's settings checked before the first one distils
            dataset, _, per_class = cell.partition(":")
            if dataset not in PRESETS or per_class not in ("1", "10"):
                raise ValueError(
                    f"--cells takes DATA:K with DATA one of {', '.join(PRESETS)} and K 1 or 10 "
                    f"(the images per class of the presets), got {cell!r}"
                )
            _preset(dataset, int(per_class), overrides)
        device = resolve_device(args.device)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    # a finished cell is evaluated again; one stopped mid-way is the user's to continue or remove
    unfinished = [Path(args.out) / cell.replace(":", "-") for cell in args.cells]
    refuse_started_runs(
        parser, [f for f in unfinished if not (f / "distilled.safetensors").exists()]
    )
    if device.type == "cuda":
        if args.nproc > torch.cuda.device_count():
            parser.error(
                f"--nproc {args.nproc} --device cuda puts one process on each GPU; this machine has "
                f"{torch.cuda.device_count()}: use --nproc {torch.cuda.device_count()} or fewer"
            )
        machine = f"{torch.cuda.get_device_name(args.device)}, torch {torch.__version__}"
    else:
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.nproc > 1:
        machine += f"; distilled by {args.nproc} processes (torchrun)"

    def train_fresh(images: DistilledData, model: str, json_path: Path | None = None) -> EvalResult:
        return evaluate_as_dataset(
            images,
            model=model,
            models=args.models,
            recipe=recipe,
            device=args.device,
            progress=False,
            json_path=json_path,
            jobs=args.jobs,
        )

    rows: list[dict] = []
    for cell in args.cells:
        dataset, per_class = cell.split(":")
        k = int(per_class)
        folder = Path(args.out) / f"{dataset}-{k}"
        started = time.perf_counter()
        if args.real_only and not (folder / "distilled.safetensors").exists():
            parser.error(
                f"--real-only evaluates beside a finished run: {folder} has none (run without it)"
            )
        if not (folder / "distilled.safetensors").exists():
            cfg = _preset(dataset, k, overrides)
            if args.nproc > 1:
                _distill_torchrun(cfg, args.nproc, args.minutes, folder)
            else:
                datadistill.distill(cfg, time_limit=args.minutes, out=str(folder), progress=False)
        data = DistilledData.load(folder)
        distill_minutes = data.manifest.get("distill_seconds_this_session", 0) / 60
        networks = ["convnet"] + (args.cross_arch if (dataset, k) == ("mnist", 10) else [])

        for model in [] if args.real_only else networks:
            # publish_gallery reads the json
            epochs = "" if recipe.epochs == FieldRecipe().epochs else f"-{recipe.epochs}"
            result = train_fresh(
                data, model, folder / f"eval-{model}-{recipe.augment}{epochs}.json"
            )
            rows.append(
                _row(
                    dataset,
                    k,
                    f"datadistill ({data.manifest['iterations']} its{''.join(', ' + i for i in args.set)})",
                    model,
                    result,
                    distill_minutes,
                    machine,
                )
            )
            _report(rows, args.json, recipe)
        if not args.no_real:
            real = random_real(data, k, seed=0)
            # each network's own baseline on the same images, so a column compares like with like
            for model in networks:
                result = train_fresh(real, model)
                rows.append(_row(dataset, k, "random real images", model, result, 0.0, machine))
                _report(rows, args.json, recipe)
        print(f"{cell}: {time.perf_counter() - started:.0f} s", flush=True)


def _preset(dataset: str, k: int, overrides: dict) -> DistillConfig:
    return load_config(DistillConfig, f"{PRESETS[dataset]}_{k}_per_class", overrides)


def _distill_torchrun(cfg: DistillConfig, nproc: int, minutes: float, folder: Path) -> None:
    """Distil ``cfg`` into ``folder`` with ``torchrun`` over ``nproc`` processes (docs/distributed.md)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = folder.parent / f"{folder.name}.yaml"
    save_config(cfg, config, notes=[f"field_table.py --nproc {nproc}: the cell's resolved preset"])
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "-m", "datadistill", "distill", "--config", str(config),
        "--time-limit", str(minutes), "--out", str(folder),
    ]  # fmt: skip
    # One thread per process: two processes of two OpenMP threads each on two cores wait on each other.
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        sys.exit(
            f"field_table.py: distilling {folder.name} with torchrun failed (exit status {done.returncode}; "
            f"its first error is printed above); what it saved stays in {folder}: continue it with "
            f"`datadistill distill --resume --out {folder}` under torchrun, or remove the folder to start over"
        )


def _row(dataset, k, method, model, result, minutes, machine) -> dict:
    published = FIELD.get((dataset, k), {})
    must, aim = FIELD_BARS.get((dataset, k), (None, None))
    return {
        "dataset": dataset,
        "images_per_class": k,
        "method": method,
        "eval_model": model,
        "accuracy_mean": round(result.accuracy_mean, 2),
        "accuracy_std": round(result.accuracy_std, 2),
        "accuracies": result.accuracies,
        "n_models": result.n_models,
        "recipe": result.recipe,
        "distill_minutes": round(minutes, 1),
        "published": published,
        "must_reach": must,
        "aim": aim,
        "machine": machine,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _report(rows: list[dict], json_path: str, recipe: FieldRecipe) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps({"recipe": recipe.describe(), "rows": rows}, indent=1))
    print(f"\nfield protocol: {recipe.describe()}")
    print(
        "| data | ipc | method | eval net | accuracy | distil min | published (best) | must reach |"
    )
    print("|---|---:|---|---|---:|---:|---|---:|")
    for r in rows:
        best = max(r["published"].items(), key=lambda kv: kv[1]) if r["published"] else ("", "")
        print(
            f"| {r['dataset']} | {r['images_per_class']} | {r['method']} | {r['eval_model']} | "
            f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | {r['distill_minutes']} | "
            f"{best[1]} ({best[0]}) | {r['must_reach']} |",
            flush=True,
        )


if __name__ == "__main__":
    run_script(main)
