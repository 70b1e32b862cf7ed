"""Seconds per outer iteration, ours vs the reference code, interleaved on the same machine.

The reference code (SsnL/dataset-distillation) is not part of this project: check it out yourself and give a
command that runs its training loop for N iterations and prints a line ``REF s_per_it=<float> …`` (and
optionally ``REF_DETAIL … compute_s_per_it=<float> …``, its time without data loading). ``{setting}``,
``{iterations}`` and ``{threads}`` in the command are filled in. Ours: the marginal wall time per iteration
of ``datadistill.distill`` (wall(5 + N) − wall(5)) / N, which includes batch sampling, the meta-gradient,
the Adam update, checkpoints and logging, and the manifest's ``seconds_per_iteration`` (meta-gradient +
update only). Settings: ``fixed100`` (mnist_fixed: 10 steps × 3 epochs, 100 images) and ``fixed10``
(mnist_fixed_10: 1 step × 3 epochs). Run it alone: two benchmarks at once make both numbers wrong. Its peak RSS
column is each process's own: ours runs three distillations, each with its final evaluation, in one process,
so it is not like-for-like; ``memory_vs_reference.py`` compares peak memory.

    DATADISTILL_DATA=/work/shared/datasets python benchmarks/speed_vs_reference.py \
        --reference-cmd "bash /path/to/ref/time_ref.sh {setting} {iterations} {threads}" \
        --threads 2 --repeats 3 --json runs/speed_vs_reference.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from datadistill.artifacts import write_json
from datadistill.cli import checked_args, count_arg, run_script

PRESETS = {"fixed100": ("mnist_fixed", 30), "fixed10": ("mnist_fixed_10", 60)}

OURS = r"""
import json, sys, tempfile, time, torch
import datadistill
from datadistill.config import DistillConfig, load_config
preset, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
def run(iterations):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        data = datadistill.distill(load_config(DistillConfig, preset), iterations=iterations, out=out,
                                   eval_every=10**6, checkpoint_every=10**6, eval_models=1, progress=False)
        return time.perf_counter() - start, data.manifest["seconds_per_iteration"]
run(5)  # warm up: data set cache, allocator, oneDNN primitives
base, _ = run(5)
total, compute = run(5 + n)
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
print(json.dumps({"s_per_it": (total - base) / n, "compute_s_per_it": compute, "peak_rss_mib": peak}))
"""


def _ours(setting: str, threads: int, n: int) -> dict[str, float]:
    preset, _ = PRESETS[setting]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", OURS, preset, str(n), str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _reference(command: str, setting: str, threads: int, n: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = command.format(setting=setting, iterations=n, threads=threads)
    out = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True).stdout
    total = re.search(r"^REF s_per_it=([0-9.]+)", out, re.M)
    if total is None:
        sys.exit(f"the reference command printed no 'REF s_per_it=' line: {cmd}\n{out[-2000:]}")
    compute = re.search(r"compute_s_per_it=([0-9.]+)", out)
    peak = re.search(r"peak_rss_mib=([0-9.]+)", out)
    return {
        "s_per_it": float(total.group(1)),
        "compute_s_per_it": float(compute.group(1)) if compute else float("nan"),
        "peak_rss_mib": float(peak.group(1)) if peak else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-cmd", required=True, help="see the module docstring")
    parser.add_argument("--settings", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--threads", type=count_arg, default=2)
    parser.add_argument("--repeats", type=count_arg, default=3, help="interleaved rounds")
    parser.add_argument("--json", help="write the measurements here (rewritten after every round)")
    parser.add_argument(
        "--iterations",
        type=count_arg,
        help="timed iterations per run (default: 30 fixed100, 60 fixed10)",
    )
    args = checked_args(parser)

    rows: dict[str, dict[str, list[float]]] = {
        s: {k: [] for k in ("ref", "ref_compute", "ours", "ours_compute", "ref_rss", "ours_rss")}
        for s in args.settings
    }
    report = {
        "machine": {
            "platform": platform.platform(),
            "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
        "reference_cmd": args.reference_cmd,
        "rows": rows,
    }
    for _ in range(args.repeats):
        for setting in args.settings:
            n = args.iterations or PRESETS[setting][1]
            ref = _reference(args.reference_cmd, setting, args.threads, n)
            ours = _ours(setting, args.threads, n)
            row = rows[setting]
            row["ref"].append(ref["s_per_it"])
            row["ref_compute"].append(ref["compute_s_per_it"])
            row["ours"].append(ours["s_per_it"])
            row["ours_compute"].append(ours["compute_s_per_it"])
            row["ref_rss"].append(ref["peak_rss_mib"])
            row["ours_rss"].append(ours["peak_rss_mib"])
        if args.json:
            write_json(Path(args.json), report)

    print(
        "| setting | reference s/it | reference, no data loading | ours s/it | ours, meta-grad + update "
        "| reference / ours | arithmetic: ours / reference | peak RSS MiB: reference / ours (3 runs) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for setting, row in rows.items():
        med = {k: statistics.median(v) for k, v in row.items()}
        print(
            f"| {setting} | {med['ref']:.3f} | {med['ref_compute']:.3f} | {med['ours']:.3f} | "
            f"{med['ours_compute']:.3f} | {med['ref'] / med['ours']:.2f}× | "
            f"{med['ours_compute'] / med['ref_compute']:.2f}× | "
            f"{med['ref_rss']:.0f} / {med['ours_rss']:.0f} |"
        )


if __name__ == "__main__":
    run_script(main)
