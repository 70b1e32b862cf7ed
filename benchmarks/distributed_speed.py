"""Seconds per iteration of random-init distillation with 1 process vs N torchrun processes, same total inits.

1 process × K inits (all cores to one process) against N processes × K/N inits (cores split between them), on
LeNet/MNIST, 10 steps × 3 epochs, real batch 1024. Timed by the distillation loop itself (manifest
``seconds_per_iteration``), after a warm-up run, so start-up and evaluation are not counted.

    DATADISTILL_DATA=../shared/datasets python benchmarks/distributed_speed.py --inits 8 --procs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datadistill.cli import checked_args, count_arg, run_script


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(procs: int, inits: int, iterations: int, out: Path, dataset: str) -> float:
    args = [
        "-m",
        "datadistill",
        "distill",
        "--dataset",
        dataset,
        "--model",
        "lenet",
        "--init",
        "random",
        "--steps",
        "10",
        "--epochs",
        "3",
        "--iterations",
        str(iterations),
        "--inits-per-iteration",
        str(inits // procs),
        "--eval-every",
        "1000000",
        "--eval-models",
        str(procs),
        "--out",
        str(out),
    ]
    threads = max(1, (os.cpu_count() or 2) // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if procs == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(procs),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_port()),
            *args,
        ]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest["seconds_per_iteration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inits", type=count_arg, default=8, help="inits per iteration in total")
    parser.add_argument("--procs", type=count_arg, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=count_arg, default=10)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--json", default="runs/distributed_speed.json")
    args = checked_args(parser)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for procs in args.procs:
            _run(procs, args.inits, 2, Path(tmp) / f"warm{procs}", args.dataset)
            per_it = _run(procs, args.inits, args.iterations, Path(tmp) / f"p{procs}", args.dataset)
            rows.append(
                {
                    "processes": procs,
                    "inits_per_process": args.inits // procs,
                    "seconds_per_iteration": per_it,
                }
            )
            print(
                f"{procs} process(es) x {args.inits // procs} inits: {per_it:.3f} s/it", flush=True
            )
    base = rows[0]["seconds_per_iteration"]
    print("\n| processes | inits each | s/it | speed-up vs first |\n|---|---|---|---|")
    for r in rows:
        r["speedup"] = base / r["seconds_per_iteration"]
        print(
            f"| {r['processes']} | {r['inits_per_process']} | {r['seconds_per_iteration']:.3f} | "
            f"{r['speedup']:.2f}x |"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu_count": os.cpu_count(), "rows": rows},
            indent=2,
        )
    )


if __name__ == "__main__":
    run_script(main)
