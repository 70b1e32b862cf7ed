"""Distilled accuracy against the number of GD steps and epochs, fixed init (the paper's hyper-parameter figure).

For every (steps, epochs) in the grid, distil from scratch with a fixed init and report the test accuracy of
the one network trained by replaying the distilled steps (`datadistill.distill`, which evaluates with the
replay protocol at the end). One line per epoch count against steps. Sized to finish in minutes on CPU with
the embedded digits set; ``--dataset mnist --device cuda`` runs the same sweep at paper scale.

Usage:
    flock /tmp/datadistill-bench.lock python benchmarks/sweep_steps_epochs.py \\
        --json runs/sweep_steps_epochs.json      # writes docs/sweep_steps_epochs.png
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from datadistill import distill
from datadistill.cli import checked_args, count_arg, run_script, seed_arg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help="default: digits (embedded, 8x8)")
    p.add_argument("--model", default=None, help="default: the data set's (mlp for digits)")
    p.add_argument("--steps", default="1,2,5,10", help="comma-separated step counts")
    p.add_argument("--epochs", default="1,2,3,5", help="comma-separated epoch counts")
    p.add_argument("--images-per-class", type=count_arg, default=1)
    p.add_argument("--iterations", type=count_arg, default=200, help="outer iterations per run")
    p.add_argument("--batch-size", type=count_arg, default=256, help="real images per meta-loss")
    p.add_argument("--lr", type=float, default=0.05, help="Adam lr on pixels and lrs")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--png", type=Path, default=Path("docs/sweep_steps_epochs.png"))
    return checked_args(p, argv)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for epochs in sorted({r["epochs"] for r in rows}):
        line = sorted((r["steps"], r["accuracy"]) for r in rows if r["epochs"] == epochs)
        ax.plot(*zip(*line, strict=True), marker="o", label=f"{epochs} epoch{'s' * (epochs > 1)}")
    ax.set_xscale("log")
    steps = sorted({r["steps"] for r in rows})
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.minorticks_off()
    ax.set_xlabel("distilled GD steps (one batch of images each)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    steps_grid = [int(s) for s in args.steps.split(",")]
    epochs_grid = [int(e) for e in args.epochs.split(",")]
    rows = []
    started = time.perf_counter()
    print("| steps | epochs | test accuracy (%) | before (%) | seconds |\n|---|---|---|---|---|")
    for epochs in epochs_grid:
        for steps in steps_grid:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="datadistill-sweep-") as tmp:
                data = distill(
                    dataset=args.dataset,
                    model=args.model,
                    init="fixed",
                    steps=steps,
                    epochs=epochs,
                    images_per_class=args.images_per_class,
                    iterations=args.iterations,
                    schedule="step",  # the schedule its published sweep was measured with
                    batch_size=args.batch_size,
                    lr=args.lr,
                    eval_every=args.iterations,
                    checkpoint_every=args.iterations,
                    seed=args.seed,
                    data_dir=args.data_dir,
                    device=args.device,
                    out=tmp,
                    progress=False,
                )
            acc = data.manifest["accuracy"]
            row = {
                "steps": steps,
                "epochs": epochs,
                "accuracy": acc["accuracy_mean"],
                "accuracy_before": acc["accuracy_before_mean"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            print(
                f"| {steps} | {epochs} | {row['accuracy']:.2f} | {row['accuracy_before']:.2f} | "
                f"{row['seconds']:.0f} |",
                flush=True,
            )
    model = data.manifest["model"]
    title = (
        f"{args.dataset} ({model}), fixed init, {args.images_per_class} image(s)/class/step, "
        f"{args.iterations} iterations"
    )
    plot(rows, args.png, title)
    record = {
        "rows": rows,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": model,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}",
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"{record['total_seconds']:.0f} s; plot: {args.png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    run_script(main)
