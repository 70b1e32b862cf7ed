"""Dataset-protocol meta-gradients of k inits: one at a time against batched with ``torch.func.vmap``.

The field presets' inner loop (ConvNet-3, 20 momentum updates on all 100 images of MNIST's shape, a real
batch of 256), timed for ``truncated_meta_grad`` over k inits in a loop and ``batched_truncated_meta_grad``
over the same k, interleaved repeat by repeat so that both see the same machine. Reports seconds per
meta-gradient of all k and the speed-up (loop / batched), and writes JSON.

    python benchmarks/vmap_inits.py --inits 2 4 --width 32 --json runs/vmap_inits.json [--device cuda]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from datadistill.cli import checked_args, count_arg, run_script
from datadistill.minibatch_unroll import Recipe, batched_truncated_meta_grad, truncated_meta_grad
from datadistill.models.convnet import ConvNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loop(model, inits, task) -> None:
    images, labels, lr, recipe, objective = task
    for j, p in enumerate(inits):
        g = torch.Generator().manual_seed(j)
        truncated_meta_grad(
            model, p, images, labels, lr, recipe, objective, window=None, generator=g
        )


def _batched(model, inits, task) -> None:
    images, labels, lr, recipe, objective = task
    g = torch.Generator().manual_seed(0)
    batched_truncated_meta_grad(
        model, inits, images, labels, lr, recipe, objective, window=None, generator=g
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inits", type=count_arg, nargs="+", default=[2, 4], help="k values")
    parser.add_argument("--width", type=count_arg, nargs="+", default=[32], help="ConvNet-3 widths")
    parser.add_argument("--updates", type=count_arg, default=20)
    parser.add_argument("--images", type=count_arg, default=100)
    parser.add_argument("--repeats", type=count_arg, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="runs/vmap_inits.json")
    args = checked_args(parser)
    if min(args.inits) < 1 or min(args.width) < 1 or args.repeats < 1 or args.updates < 1:
        parser.error("--inits, --width, --updates and --repeats take positive integers")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this machine has no CUDA GPU (use --device cpu)")
    device = torch.device(args.device)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(1, args.images, 1, 28, 28, generator=gen).to(device)
    labels = (torch.arange(args.images) % 10).view(1, -1).to(device)
    real_x = torch.randn(256, 1, 28, 28, generator=gen).to(device)
    real_y = torch.randint(0, 10, (256,), generator=gen).to(device)
    lr = torch.tensor([0.01], device=device)
    recipe = Recipe(optimizer="momentum", updates=args.updates)

    def objective(model, theta):
        return F.cross_entropy(torch.func.functional_call(model, theta, (real_x,)), real_y)

    rows = []
    for width in args.width:
        model = ConvNet((1, 28, 28), 10, width=width).to(device)
        for k in args.inits:
            inits = []
            for j in range(k):
                torch.manual_seed(j)
                net = ConvNet((1, 28, 28), 10, width=width).to(device)
                inits.append({n: p.detach() for n, p in net.named_parameters()})

            task = (images, labels, lr, recipe, objective)
            runs = {
                "loop": functools.partial(_loop, model, inits, task),
                "vmap": functools.partial(_batched, model, inits, task),
            }
            seconds = {"loop": [], "vmap": []}
            for fn in runs.values():  # warm-up
                fn()
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    _sync(device)
                    started = time.perf_counter()
                    fn()
                    _sync(device)
                    seconds[name].append(time.perf_counter() - started)
            loop_s, vmap_s = (sorted(seconds[n])[len(seconds[n]) // 2] for n in ("loop", "vmap"))
            rows.append(
                {
                    "width": width,
                    "inits": k,
                    "loop_seconds": round(loop_s, 3),
                    "vmap_seconds": round(vmap_s, 3),
                    "speedup": round(loop_s / vmap_s, 3),
                    "seconds": seconds,
                }
            )
            print(f"width {width}, k {k}: loop {loop_s:.2f} s, vmap {vmap_s:.2f} s", flush=True)
    report = {
        "machine": machine,
        "torch": torch.__version__,
        "updates": args.updates,
        "images": args.images,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n{machine}, torch {torch.__version__}; median of {args.repeats} interleaved repeats")
    print("| ConvNet-3 width | inits k | loop s | vmap s | loop / vmap |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['width']} | {r['inits']} | {r['loop_seconds']:.2f} | {r['vmap_seconds']:.2f} | "
            f"{r['speedup']:.2f} |"
        )


if __name__ == "__main__":
    run_script(main)
