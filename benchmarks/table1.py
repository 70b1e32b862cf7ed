"""The paper's Table 1 (Wang et al. 2018): distilled data against real-image baselines of the same budget.

Rows: distilled images (from finished `datadistill distill` run folders, evaluated with the replay protocol of
`datadistill.evaluate`), then the baselines of `datadistill.experiments.baselines` used as training data for the same number
of GD steps and epochs (random real, optimised real, k-means, average real; each with one tuned lr and with
learned lrs), used by 1-NN (random real, k-means), and the network trained on the full training set. Columns:
ours and the paper's, for fixed init and for random init (held-out inits, mean ± std).

Usage:
    DATADISTILL_DATA=/path/to/datasets flock /tmp/datadistill-bench.lock \\
        python benchmarks/table1.py --dataset mnist --models 20 \\
        [--distilled-fixed RUN --distilled-random RUN] --json runs/table1_mnist.json

Writes Markdown (``--md``, default docs/table1_<dataset>.md), JSON (``--json``) and a bar chart
(``--png``, default docs/table1_<dataset>.png).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from datadistill import DistilledData, evaluate
from datadistill.cli import checked_args, count_arg, run_script, seed_arg
from datadistill.config import IMAGE_BASELINES, KNN_BASELINES
from datadistill.experiments.baselines import (
    LEARNED,
    TUNED,
    BaselineRow,
    run_baselines,
)
from published import PAPER_TABLE1, RECALLED


def paper_cell(dataset: str, key: str | None, init: str) -> str:
    value = PAPER_TABLE1.get(dataset, {}).get((key, init)) if key else None
    if value is None:
        return "—"
    mean, std = value
    text = f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")
    return f"{text} (≈)" if key in RECALLED or f"{key}/{init}" in RECALLED else text


LABELS = {
    "random-real": "random real",
    "optimized-real": "optimised real",
    "kmeans": "k-means",
    "average-real": "average real",
    "knn-random": "1-NN on random real",
    "knn-kmeans": "1-NN on k-means",
    "full-data": "full training set",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--model", default="lenet")
    p.add_argument("--steps", type=count_arg, default=10)
    p.add_argument("--epochs", type=count_arg, default=3)
    p.add_argument("--images-per-class", type=count_arg, default=1)
    p.add_argument("--models", type=count_arg, default=20, help="held-out inits for random init")
    p.add_argument("--distilled-fixed", default=None, metavar="RUN", help="fixed-init run folder")
    p.add_argument("--distilled-random", default=None, metavar="RUN", help="random-init run folder")
    p.add_argument(
        "--learn-lrs", action=argparse.BooleanOptionalAction, default=True, help="learned-lr rows"
    )
    p.add_argument("--lrs-iterations", type=count_arg, default=200, help="learned lrs, fixed init")
    p.add_argument("--lrs-iterations-random", type=count_arg, default=100, help="… random init")
    p.add_argument(
        "--lrs-inits", type=count_arg, default=2, help="inits per iteration, random init"
    )
    p.add_argument(
        "--lrs-batch-size", type=count_arg, default=1024, help="real images per meta-loss"
    )
    p.add_argument(
        "--candidates", type=count_arg, default=20, help="random sets for optimised real"
    )
    p.add_argument("--full-epochs", type=count_arg, default=2, help="full data: epochs of Adam")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None, help="default: docs/table1_<dataset>.md")
    p.add_argument("--png", type=Path, default=None, help="default: docs/table1_<dataset>.png")
    return checked_args(p, argv)


def _fmt(row: dict | None) -> str:
    if row is None:
        return "—"
    if row["n_models"] > 1:
        return f"{row['accuracy_mean']:.1f} ± {row['accuracy_std']:.1f}"
    return f"{row['accuracy_mean']:.1f}"


def _as_dict(r: BaselineRow) -> dict:
    d = r.to_dict()
    d.pop("accuracies")
    return d


def measure(args: argparse.Namespace) -> dict:
    """Run everything; return {init: {row key: result dict}} plus timings."""
    common = dict(
        dataset=args.dataset,
        model=args.model,
        steps=args.steps,
        epochs=args.epochs,
        images_per_class=args.images_per_class,
        learn_lrs=args.learn_lrs,
        candidates=args.candidates,
        lrs_batch_size=args.lrs_batch_size,
        full_epochs=args.full_epochs,
        seed=args.seed,
        data_dir=args.data_dir,
        device=args.device,
    )
    results: dict[str, dict[str, dict]] = {"fixed": {}, "random": {}}
    seconds = {}
    for init, run in (("fixed", args.distilled_fixed), ("random", args.distilled_random)):
        if run is None:
            continue
        made_on = DistilledData.load(run).manifest["dataset"]
        if made_on != args.dataset:
            raise ValueError(
                f"--distilled-{init} {run} is a set of {made_on}, not of --dataset {args.dataset}"
            )
        started = time.perf_counter()
        res = evaluate(run, models=1 if init == "fixed" else args.models, data_dir=args.data_dir)
        d = res.to_dict()
        d.pop("accuracies"), d.pop("accuracies_before")
        results[init]["distilled"] = {**d, "run": str(run)}
        seconds[f"distilled-{init}"] = round(time.perf_counter() - started, 1)

    # Fixed init: every baseline. 1-NN and full data do not depend on the init kind: measured once, reused.
    started = time.perf_counter()
    fixed = run_baselines(init="fixed", lrs_iterations=args.lrs_iterations, **common)
    seconds["baselines-fixed"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    random = run_baselines(
        init="random",
        models=args.models,
        only=IMAGE_BASELINES,
        lrs_iterations=args.lrs_iterations_random,
        lrs_inits_per_iteration=args.lrs_inits,
        **common,
    )
    seconds["baselines-random"] = round(time.perf_counter() - started, 1)
    for init, report in (("fixed", fixed), ("random", random)):
        for r in report.rows:
            key = r.baseline if r.lrs != LEARNED else f"{r.baseline}+learned-lrs"
            results[init][key] = _as_dict(r)
    for key in (*KNN_BASELINES, "full-data"):
        if key in results["fixed"]:
            results["random"][key] = {**results["fixed"][key], "reused_from": "fixed"}
    return {"results": results, "seconds": seconds, "protocol": random.protocol}


def table(dataset: str, results: dict[str, dict[str, dict]], learn_lrs: bool) -> str:
    lines = [
        "| | ours, fixed init | paper, fixed init | ours, random init | paper, random init |",
        "|---|---|---|---|---|",
    ]

    def line(label: str, key: str, paper_key: str | None) -> None:
        cells = [
            _fmt(results["fixed"].get(key)),
            paper_cell(dataset, paper_key, "fixed"),
            _fmt(results["random"].get(key)),
            paper_cell(dataset, paper_key, "random"),
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    line("**distilled images** (replay, learned lrs)", "distilled", "distilled")
    lines.append("| *real images as training data, same steps × epochs:* | | | | |")
    for b in IMAGE_BASELINES:
        line(f"{LABELS[b]}, {TUNED}", b, b)
        if learn_lrs:
            line(f"{LABELS[b]}, {LEARNED}", f"{b}+learned-lrs", None)
    lines.append("| *1-NN classifier on the images:* | | | | |")
    for b in KNN_BASELINES:
        line(LABELS[b], b, None)  # not in PAPER_TABLE1.md
    line(LABELS["full-data"], "full-data", "full-data")
    return "\n".join(lines)


def chart(dataset: str, results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        k
        for k in (
            "distilled",
            *[x for b in IMAGE_BASELINES for x in (b, f"{b}+learned-lrs")],
            *KNN_BASELINES,
            "full-data",
        )
        if k in results["fixed"] or k in results["random"]
    ]
    names = {
        **LABELS,
        "distilled": "distilled",
        **{f"{b}+learned-lrs": f"{LABELS[b]} + learned lrs" for b in IMAGE_BASELINES},
    }
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.38
    for j, (init, color) in enumerate((("fixed", "tab:blue"), ("random", "tab:orange"))):
        xs, means, stds = [], [], []
        for i, k in enumerate(keys):
            r = results[init].get(k)
            if r is not None:
                xs.append(i + (j - 0.5) * width)
                means.append(r["accuracy_mean"])
                stds.append(r["accuracy_std"])
        ax.bar(xs, means, width, yerr=stds, capsize=2, color=color, label=f"ours, {init} init")
        for i, k in enumerate(keys):
            paper = PAPER_TABLE1.get(dataset, {}).get((k, init))
            if paper is not None:
                x = i + (j - 0.5) * width
                ax.plot([x - width / 2, x + width / 2], [paper[0]] * 2, color="black", lw=2)
    ax.plot([], [], color="black", lw=2, label="paper")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([names[k] for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Table 1, {dataset}: distilled vs. real-image baselines (same budget)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    out = measure(args)
    md = table(args.dataset, out["results"], args.learn_lrs)
    record = {
        **out,
        "dataset": args.dataset,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "paper": {f"{k[0]}/{k[1]}": v for k, v in PAPER_TABLE1.get(args.dataset, {}).items()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}",
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(md)
    print(f"\n{out['protocol']}; {record['total_seconds']:.0f} s")
    md_path = args.md or Path("docs") / f"table1_{args.dataset}.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(f"{md}\n\n{out['protocol']}.\n")
    chart(args.dataset, out["results"], args.png or Path("docs") / f"table1_{args.dataset}.png")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    run_script(main)
