"""The linear case (Wang et al. 2018, §3.3): how the excess loss after one step depends on M / D.

For linear regression, M distilled points can take *every* init to the optimum in one GD step only
if M ≥ D. This script distils M = r·D points (+ one lr) with the meta-gradient machinery for each
ratio r, on synthetic data (D = 16) and on MNIST projected to D = 32 dimensions, and measures the
excess loss L(θ1) − L(θ*) on held-out inits against the analytic lower bound for M < D and the
closed-form construction (see docs/linear.md).

Usage:
    DATADISTILL_DATA=/path/to/datasets flock /tmp/datadistill-bench.lock \\
        python benchmarks/linear_bound.py --json runs/linear_bound.json --plot docs/linear_bound.png

Prints one Markdown table per data set and writes a JSON record (rows, settings, seconds, machine)
and a PNG plot. Without MNIST files (no --data-dir / $DATADISTILL_DATA), pass --skip-mnist.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from datadistill.cli import checked_args, count_arg, run_script, seed_arg
from datadistill.experiments.linear import (
    DEFAULT_RATIOS,
    format_table,
    mnist_problem,
    plot_sweep,
    sweep,
    synthetic_problem,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS), help="M / D")
    p.add_argument("--synthetic-dim", type=count_arg, default=16, help="D of the synthetic problem")
    p.add_argument("--mnist-dim", type=count_arg, default=32, help="D of projected MNIST")
    p.add_argument("--mnist-points", type=count_arg, default=10_000, help="real MNIST rows used")
    p.add_argument("--skip-mnist", action="store_true", help="synthetic only")
    p.add_argument("--iterations", type=count_arg, default=400, help="outer iterations per M")
    p.add_argument("--inits", type=count_arg, default=4, help="training inits per iteration")
    p.add_argument("--eval-inits", type=count_arg, default=2000, help="held-out inits per M")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--data-dir", default=None, help="default: $DATADISTILL_DATA or the cache")
    # One thread: the matrices are at most 10,000 × 32, and intra-op threads only add overhead.
    p.add_argument("--threads", type=count_arg, default=1, help="torch threads (default: 1)")
    p.add_argument("--json", type=Path, default=Path("runs/linear_bound.json"), metavar="OUT")
    p.add_argument("--plot", type=Path, default=Path("docs/linear_bound.png"), metavar="PNG")
    return checked_args(p, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not all(r > 0 for r in args.ratios):  # M = round(r·D) would clamp them all to one point
        raise ValueError(f"--ratios are values of M / D and must be positive, got {args.ratios}")
    torch.set_num_threads(args.threads)
    problems = [synthetic_problem(args.synthetic_dim, seed=args.seed)]
    if not args.skip_mnist:
        problems.append(
            mnist_problem(
                args.mnist_dim,
                data_dir=args.data_dir,
                num_points=args.mnist_points,
                seed=args.seed,
            )
        )
    start = time.perf_counter()
    rows = []
    for problem in problems:
        print(
            f"\n{problem.name}: D = {problem.dim}, O = {problem.out_dim}, N = {len(problem.x)}, "
            f"L(θ*) = {problem.optimal_loss:.4f}, σ = 1/√D"
        )
        part = sweep(
            problem,
            args.ratios,
            iterations=args.iterations,
            inits_per_iteration=args.inits,
            num_eval_inits=args.eval_inits,
            seed=args.seed,
        )
        print(format_table(part), flush=True)
        rows += part
    seconds = time.perf_counter() - start
    print(f"\ntotal {seconds:.0f} s")

    record = {
        "benchmark": "linear_bound",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": [asdict(r) for r in rows],
        "seconds": seconds,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    plot_sweep(rows, args.plot, problems)
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    run_script(main)
