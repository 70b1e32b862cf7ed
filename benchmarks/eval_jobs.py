"""Dataset-protocol evaluation on a multi-core CPU: one process with all threads against ``--jobs`` processes.

Trains the same ``--models`` fresh networks on a distilled set with the field's recipe (cut to ``--epochs``) twice
per repeat: ``evaluate_as_dataset(jobs=1)`` with ``torch.get_num_threads()`` threads, and ``jobs=J`` (J
processes of ``threads // J`` threads each), the two interleaved repeat by repeat so that both see the same
machine. Reports wall seconds per network and the speed-up (one process / J processes), checks that both
trained the same networks (accuracies within one test image), and writes JSON as it goes.

    DATADISTILL_DATA=../shared/datasets python benchmarks/eval_jobs.py \
        --set src/datadistill/gallery/mnist-10-per-class --model convnet --models 2 --epochs 20 --jobs 2 \
        --repeats 2 --json runs/eval_jobs.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from datadistill import DistilledData
from datadistill.cli import checked_args, count_arg, run_script
from datadistill.evaluate import FieldRecipe, evaluate_as_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="src/datadistill/gallery/mnist-10-per-class")
    parser.add_argument("--model", default="convnet")
    parser.add_argument(
        "--models", type=count_arg, default=2, help="networks per timing (a multiple of --jobs)"
    )
    parser.add_argument("--epochs", type=count_arg, default=20)
    parser.add_argument("--augment", default="none")
    parser.add_argument("--jobs", type=count_arg, default=2)
    parser.add_argument("--repeats", type=count_arg, default=2)
    parser.add_argument("--json", default="runs/eval_jobs.json")
    args = checked_args(parser)
    if args.jobs < 2 or args.models < 1 or args.repeats < 1 or args.epochs < 1:
        parser.error("--jobs takes 2 or more; --models, --repeats and --epochs 1 or more")
    if args.models % args.jobs:
        parser.error(
            f"--models {args.models} must be a multiple of --jobs {args.jobs}, so every process trains as many"
        )

    data = DistilledData.load(args.set)
    recipe = FieldRecipe(epochs=args.epochs, augment=args.augment)
    threads = torch.get_num_threads()
    seconds: dict[str, list[float]] = {"one process": [], f"{args.jobs} jobs": []}
    accuracies: dict[str, list[float]] = {}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "set": args.set,
        "model": args.model,
        "models": args.models,
        "recipe": recipe.describe(),
    }
    for _ in range(args.repeats):
        for name, jobs in (("one process", 1), (f"{args.jobs} jobs", args.jobs)):
            started = time.perf_counter()
            result = evaluate_as_dataset(
                data, model=args.model, models=args.models, recipe=recipe, progress=False, jobs=jobs
            )
            seconds[name].append((time.perf_counter() - started) / args.models)
            accuracies[name] = result.accuracies
        one, many = (statistics.median(v) for v in seconds.values())
        report |= {"seconds_per_network": seconds, "accuracies": accuracies, "speedup": one / many}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))

    one, many = (statistics.median(v) for v in seconds.values())
    print(f"{report['machine']}; {args.model}, {args.models} networks, {recipe.describe()}")
    print("| evaluation | s per network (median) | accuracies |\n|---|---:|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.1f} | {accuracies[name]} |")
    print(f"speed-up: {one / many:.2f}x")
    same = all(abs(a - b) <= 0.011 for a, b in zip(*accuracies.values(), strict=True))
    print(
        "the same networks: "
        + ("yes" if same else "NO: accuracies differ by more than one test image")
    )


if __name__ == "__main__":
    run_script(main)
