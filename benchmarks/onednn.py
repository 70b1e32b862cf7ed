"""Does turning oneDNN (mkldnn) off make the CPU meta-gradient faster? An interleaved A/B in one process.

The unrolled updates run LeNet on 10-image batches, where per-call overhead, not arithmetic, dominates
(docs/notes.md, "Where the time goes"); oneDNN's convolutions are built for large batches. For each setting
(S steps × 3 epochs, 10 images per step, real batch 1024, fixed init) and strategy, this times one
meta-gradient with ``torch.backends.mkldnn`` on and off, alternating the order every round so that drifts of a
noisy host fall on both sides, and reports medians and their ratio. It also checks that both give the same
meta-gradient (relative difference), so a switch could never change results beyond float rounding.

    python benchmarks/onednn.py --threads 2 --rounds 7 --json runs/onednn.json

(Needs no data set: timing does not depend on pixel values.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from datadistill.cli import checked_args, count_arg, run_script
from datadistill.models import build_model, init_params
from datadistill.objectives import task_objective
from datadistill.unroll import Steps, meta_grad


def _setting(steps: int, generator: torch.Generator):
    model = build_model("lenet", (1, 28, 28), 10)
    params0 = init_params(model, "xavier", generator)
    objective = task_objective(
        torch.randn(1024, 1, 28, 28, generator=generator),
        torch.randint(10, (1024,), generator=generator),
    )
    schedule = Steps(
        torch.randn(steps, 10, 1, 28, 28, generator=generator),
        torch.arange(10).repeat(steps, 1),
        torch.full((3 * steps,), 0.02),
    )
    return model, params0, objective, schedule


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _flat(grads) -> torch.Tensor:
    return torch.cat([grads.images.flatten(), grads.lrs.flatten()])


def _markdown_row(row: dict) -> str:
    return (
        f"| {row['updates']} | {row['method']} | {row['s_per_meta_grad_onednn_on']:.3f} | "
        f"{row['s_per_meta_grad_onednn_off']:.3f} | {row['off_over_on']:.2f} | "
        f"{row['relative_grad_difference']:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=count_arg, nargs="+", default=[1, 10], help="distilled steps (× 3 epochs)"
    )
    parser.add_argument("--methods", nargs="+", default=["autograd", "reverse"])
    parser.add_argument(
        "--rounds", type=count_arg, default=7, help="A/B rounds (medians over these)"
    )
    parser.add_argument(
        "--repeats", type=count_arg, default=3, help="meta-gradients timed per round and side"
    )
    parser.add_argument("--threads", type=count_arg, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = checked_args(parser)
    torch.set_num_threads(args.threads)
    rows = []
    for steps in args.steps:
        model, params0, objective, schedule = _setting(steps, torch.Generator().manual_seed(0))
        for method in args.methods:
            run = partial(meta_grad, model, params0, schedule, objective, method=method)
            reference = _flat(run())
            with torch.backends.mkldnn.flags(enabled=False):
                without = _flat(run())
            difference = float((reference - without).norm() / reference.norm())
            times: dict[bool, list[float]] = {True: [], False: []}
            for r in range(args.rounds):
                for enabled in (True, False) if r % 2 == 0 else (False, True):
                    with torch.backends.mkldnn.flags(enabled=enabled):
                        times[enabled].append(_time(run, args.repeats))
            on, off = statistics.median(times[True]), statistics.median(times[False])
            rows.append(
                {
                    "updates": 3 * steps,
                    "method": method,
                    "s_per_meta_grad_onednn_on": on,
                    "s_per_meta_grad_onednn_off": off,
                    "off_over_on": off / on,
                    "relative_grad_difference": difference,
                    "times_on": times[True],
                    "times_off": times[False],
                }
            )
            print(_markdown_row(rows[-1]), flush=True)
    print("\n| updates | method | oneDNN on (s) | oneDNN off (s) | off / on | grad rel. diff |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print(_markdown_row(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "threads": args.threads,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "rounds": args.rounds,
            "repeats": args.repeats,
        }
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    run_script(main)
