"""Speed and memory of the two meta-gradient strategies against the number of unrolled updates.

Each (strategy, updates) cell runs in a fresh subprocess: LeNet on 28×28 images, 10 images per step, a real
batch of 1024, S steps × 3 epochs. It times ``--iterations`` meta-gradients and reports the growth of the
process's peak resident memory (ru_maxrss) across them, i.e. what the meta-gradient itself needs on top of the
interpreter, torch and the model. Speed of the whole outer loop is in the manifest of every run
(``seconds_per_iteration``). It also reports the allocator peak: the most bytes torch's CPU allocator held at
once during one meta-gradient (from ``torch.profiler`` allocation/free events, so it is exact and repeatable),
and that peak minus the real batch's own forward/backward peak (what the unrolled updates add).

    DATADISTILL_DATA=../shared/datasets python benchmarks/memory.py --steps 1 10 30 100 --json runs/memory.json

With ``--truncated N1 N2 …`` it measures the dataset protocol's meta-gradient instead: N momentum-SGD updates of
LeNet on 100 distilled images (all of them per update), back-propagated through a random window of ``--window``
updates, whose memory must not grow with N:

    python benchmarks/memory.py --truncated 100 1000 --window 50 --json runs/memory_truncated.json

(Needs no data set.)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from datadistill.cli import checked_args, count_arg, run_script

CHILD = r"""
import json, resource, sys, time, torch
from datadistill.models import build_model, init_params
from datadistill.objectives import task_objective
from datadistill.unroll import Steps, meta_grad
steps, method, iterations = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
g = torch.Generator().manual_seed(0)
model = build_model("lenet", (1, 28, 28), 10)
params0 = init_params(model, "xavier", g)
# Random pixels stand in for the real batch: memory and time do not depend on pixel values.
objective = task_objective(torch.randn(1024, 1, 28, 28, generator=g), torch.randint(10, (1024,), generator=g))
schedule = Steps(torch.randn(steps, 10, 1, 28, 28, generator=g), torch.arange(10).repeat(steps, 1),
                 torch.full((3 * steps,), 0.02))
kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# Warm up with the part both strategies share (forward/backward of the real batch), so that the growth below
# is what the unrolled updates cost.
leaves = {k: v.requires_grad_() for k, v in init_params(model, "xavier", g).items()}
torch.autograd.grad(objective(model, leaves), list(leaves.values()))
before = kib()
start = time.perf_counter()
for _ in range(iterations):
    meta_grad(model, params0, schedule, objective, method=method)
per_it = (time.perf_counter() - start) / iterations
rss = {"seconds_per_iteration": per_it, "peak_rss_mib": kib() / 1024, "added_mib": (kib() - before) / 1024}


def allocator_peak(fn):
    # Peak of live bytes allocated by torch's CPU allocator while fn runs, from the profiler's allocation
    # and free events (deterministic, unlike RSS, which the allocator and the OS round and keep).
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts, profile_memory=True) as prof:
        fn()
    deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    live = peak = 0
    for _, delta in deltas:
        live += delta
        peak = max(peak, live)
    return peak / 2**20


# The real batch's forward/backward at θ_0 alone: what any strategy needs before unrolling anything.
real_only = allocator_peak(lambda: torch.autograd.grad(objective(model, leaves), list(leaves.values())))
peak = allocator_peak(lambda: meta_grad(model, params0, schedule, objective, method=method))
print(json.dumps({**rss, "allocator_peak_mib": peak, "real_batch_peak_mib": real_only}))
"""


TRUNCATED_CHILD = r"""
import json, resource, sys, time, torch
from datadistill.models import build_model, init_params
from datadistill.minibatch_unroll import Recipe, truncated_meta_grad
from datadistill.objectives import task_objective
updates, window, iterations = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
g = torch.Generator().manual_seed(0)
model = build_model("lenet", (1, 28, 28), 10)
params0 = init_params(model, "xavier", g)
objective = task_objective(torch.randn(1024, 1, 28, 28, generator=g), torch.randint(10, (1024,), generator=g))
images, labels = torch.randn(1, 100, 1, 28, 28, generator=g), torch.arange(100).view(1, 100) % 10
recipe = Recipe(optimizer="momentum", updates=updates)
kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = kib()
start = time.perf_counter()
for i in range(iterations):
    # e ~ U{W..N}: what stays in memory is the window's graph of W updates, whatever e is
    truncated_meta_grad(model, params0, images, labels, torch.tensor([0.01]), recipe, objective,
                        window=window, generator=torch.Generator().manual_seed(i))
per_it = (time.perf_counter() - start) / iterations
print(json.dumps({"seconds_per_iteration": per_it, "peak_rss_mib": kib() / 1024,
                  "added_mib": (kib() - before) / 1024}))
"""


def truncated(updates: list[int], window: int, iterations: int, json_path: str) -> None:
    """Peak RSS of the random-truncated meta-gradient against the number of unrolled updates N."""
    rows = []
    for n in updates:
        out = subprocess.run(
            [sys.executable, "-c", TRUNCATED_CHILD, str(n), str(window), str(iterations)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(
            {"updates": n, "window": window, **json.loads(out.stdout.strip().splitlines()[-1])}
        )
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        machine = {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        Path(json_path).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print("| updates N | window W | s per meta-gradient | peak RSS (MiB) |\n|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['updates']} | {r['window']} | {r['seconds_per_iteration']:.2f} | {r['peak_rss_mib']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=count_arg, nargs="+", default=[1, 10, 30, 100])
    parser.add_argument(
        "--methods", nargs="+", choices=["autograd", "reverse"], default=["autograd", "reverse"]
    )
    parser.add_argument("--iterations", type=count_arg, default=5)
    parser.add_argument("--json", default="runs/memory.json")
    parser.add_argument(
        "--truncated", type=count_arg, nargs="*", help="dataset protocol: these N instead"
    )
    parser.add_argument(
        "--window", type=count_arg, default=50, help="with --truncated: the window W"
    )
    args = checked_args(parser)
    if args.truncated:
        truncated(args.truncated, args.window, args.iterations, args.json)
        return

    rows = []
    for steps in args.steps:
        for method in args.methods:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(steps), method, str(args.iterations)],
                check=True,
                capture_output=True,
                text=True,
            )
            row = {
                "steps": steps,
                "updates": 3 * steps,
                "method": method,
                **json.loads(out.stdout.strip().splitlines()[-1]),
            }
            rows.append(row)
            print(
                f"{method:>8} {row['updates']:>4} updates: {row['seconds_per_iteration']:.3f} s/it, "
                f"peak {row['peak_rss_mib']:.0f} MiB, +{row['added_mib']:.0f} MiB for the meta-gradient",
                flush=True,
            )
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(
                json.dumps(
                    {
                        "machine": {
                            "platform": platform.platform(),
                            "threads": torch.get_num_threads(),
                            "torch": torch.__version__,
                            "date": time.strftime("%Y-%m-%d %H:%M"),
                        },
                        "rows": rows,
                    },
                    indent=2,
                )
            )
    print(
        "\n| updates | method | s/it | peak RSS (MiB) | added by the meta-gradient (MiB) "
        "| allocator peak (MiB) | of which unrolled updates (MiB) |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['updates']} | {r['method']} | {r['seconds_per_iteration']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {r['added_mib']:.0f} | {r['allocator_peak_mib']:.1f} | "
            f"{r['allocator_peak_mib'] - r['real_batch_peak_mib']:.1f} |"
        )


if __name__ == "__main__":
    run_script(main)
