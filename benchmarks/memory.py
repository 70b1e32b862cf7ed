"""Speed and memory of the two meta-gradient strategies against the number of unrolled updates.

Each (strategy, updates) cell runs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its own:
LeNet on MNIST, 10 images per step, a real batch of 1024, fixed init, S steps × 3 epochs. The subprocess
times ``--iterations`` outer iterations of the real distillation loop after one warm-up run (meta-gradients
and Adam updates only; the manifest's ``seconds_per_iteration``).

    DATADISTILL_DATA=../shared/datasets python benchmarks/memory.py --steps 1 10 30 100 --json runs/memory.json
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

CHILD = r"""
import json, resource, sys, tempfile, time
import datadistill
steps, method, iterations = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
common = dict(dataset="mnist", model="lenet", init="fixed", steps=steps, epochs=3, meta_grad=method,
              eval_every=10**6, checkpoint_every=10**6, eval_models=1, progress=False)
with tempfile.TemporaryDirectory() as tmp:
    datadistill.distill(**common, iterations=1, out=tmp + "/warm")
    start = time.perf_counter()
    data = datadistill.distill(**common, iterations=iterations, out=tmp + "/run")
    per_it = data.manifest["seconds_per_iteration"]
print(json.dumps({"seconds_per_iteration": per_it,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10, 30, 100])
    parser.add_argument("--methods", nargs="+", default=["autograd", "reverse"])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--json", default="runs/memory.json")
    args = parser.parse_args()

    # The cost of a process that only loads the data: subtracted so the table shows what distillation adds.
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, datadistill; "
            "datadistill.load_dataset('mnist', 'train'); datadistill.load_dataset('mnist', 'test'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    baseline_mib = float(base.stdout.strip())
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
            row["added_mib"] = row["peak_rss_mib"] - baseline_mib
            rows.append(row)
            print(
                f"{method:>8} {row['updates']:>4} updates: {row['seconds_per_iteration']:.3f} s/it, "
                f"peak {row['peak_rss_mib']:.0f} MiB (+{row['added_mib']:.0f} over data)",
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
                        "data_only_mib": baseline_mib,
                        "rows": rows,
                    },
                    indent=2,
                )
            )
    print(
        "\n| updates | method | s/it | peak RSS (MiB) | over data only (MiB) |\n|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['updates']} | {r['method']} | {r['seconds_per_iteration']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {r['added_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
