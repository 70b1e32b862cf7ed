"""Does ``torch.compile`` of the first-order part make the CPU meta-gradient faster? An interleaved A/B.

Double backward does not pass through compiled code, so of a meta-gradient only the part that is
differentiated once can be compiled: the meta-loss on the real batch at θ_T (forward, and the backward to
θ_T; the unrolled updates stay eager, their graph is differentiated again). That part is about 30% of a
meta-gradient of the paper's fixed setting (LeNet, 10 steps × 3 epochs, 10 images per step, real batch 1,024;
docs/notes.md, "Where the time goes").
For each real-batch size this times one meta-gradient with the eager and the compiled objective, alternating
the order every round so that drifts of a noisy host fall on both sides, and reports medians and their ratio,
with the relative difference of the two meta-gradients. Compilation happens before the timing and is
reported apart.

    python benchmarks/compile_objective.py --threads 2 --rounds 7 --json runs/compile.json

(Needs no data set: timing does not depend on pixel values. Needs a C++ compiler for inductor.)
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
import torch.nn.functional as F
from torch.func import functional_call

from datadistill.cli import checked_args, count_arg, run_script
from datadistill.models import build_model, init_params
from datadistill.objectives import task_objective
from datadistill.unroll import Steps, meta_grad


def compiled_task_objective(model: torch.nn.Module, real_images, real_labels):
    """``task_objective`` with the real-batch forward and its backward compiled by inductor."""

    @torch.compile(dynamic=False)
    def loss(params):
        return F.cross_entropy(functional_call(model, params, (real_images,)), real_labels)

    return lambda _model, params: loss(params)


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _flat(grads) -> torch.Tensor:
    return torch.cat([grads.images.flatten(), grads.lrs.flatten()])


def _markdown_row(row: dict) -> str:
    return (
        f"| {row['real_batch']} | {row['s_per_meta_grad_eager']:.3f} | "
        f"{row['s_per_meta_grad_compiled']:.3f} | {row['compiled_over_eager']:.2f} | "
        f"{row['compile_seconds']:.0f} | {row['relative_grad_difference']:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=count_arg, nargs="+", default=[1024, 256])
    parser.add_argument("--steps", type=count_arg, default=10, help="distilled steps (× 3 epochs)")
    parser.add_argument(
        "--rounds", type=count_arg, default=7, help="A/B rounds (medians over these)"
    )
    parser.add_argument(
        "--repeats", type=count_arg, default=5, help="meta-gradients per round and side"
    )
    parser.add_argument("--threads", type=count_arg, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = checked_args(parser)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10)
    params0 = init_params(model, "xavier", generator)
    schedule = Steps(
        torch.randn(args.steps, 10, 1, 28, 28, generator=generator),
        torch.arange(10).repeat(args.steps, 1),
        torch.full((3 * args.steps,), 0.02),
    )
    rows = []
    for batch in args.batches:
        images = torch.randn(batch, 1, 28, 28, generator=generator)
        labels = torch.randint(10, (batch,), generator=generator)
        eager = partial(meta_grad, model, params0, schedule, task_objective(images, labels))
        compiled = partial(
            meta_grad, model, params0, schedule, compiled_task_objective(model, images, labels)
        )
        reference = _flat(eager())
        start = time.perf_counter()
        candidate = _flat(compiled())
        compile_seconds = time.perf_counter() - start
        difference = float((reference - candidate).norm() / reference.norm())
        runs = {"eager": eager, "compiled": compiled}
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for r in range(args.rounds):
            for side in ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager"):
                times[side].append(_time(runs[side], args.repeats))
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        rows.append(
            {
                "real_batch": batch,
                "s_per_meta_grad_eager": e,
                "s_per_meta_grad_compiled": c,
                "compiled_over_eager": c / e,
                "compile_seconds": compile_seconds,
                "relative_grad_difference": difference,
                "times": times,
            }
        )
        print(_markdown_row(rows[-1]), flush=True)
    print(
        "\n| real batch | eager (s) | compiled (s) | compiled / eager | compile (s) | grad rel. diff |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(_markdown_row(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "threads": args.threads,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "updates": 3 * args.steps,
            "rounds": args.rounds,
            "repeats": args.repeats,
        }
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    run_script(main)
