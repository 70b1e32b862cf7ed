"""Peak resident memory, ours vs the reference code, for the same setting and number of outer iterations.

Both sides run as child processes, one after the other, and are measured the same way: the ``ru_maxrss`` that
``os.wait4`` reports for the child (its largest resident set, or that of a descendant it waited for, if larger).

* The reference (SsnL/dataset-distillation): a command you give, as for ``speed_vs_reference.py``, with
  ``{setting}``, ``{iterations}`` and ``{threads}`` filled in. The driver there runs 2 warm-up + N outer
  iterations (the first with its epoch-0 evaluation on the test set) and then stops; it also prints its own
  ``peak_rss_mib``, recorded beside ours for a check.
* Ours: the command line a user runs, ``python -m datadistill distill --config PRESET --iterations 2+N`` (the
  same 2 + N iterations), into a temporary folder: everything included, i.e. the curve point and the final
  evaluation on the test set, the saved set, checkpoint, image grids and curve.

Settings: ``fixed100`` (mnist_fixed: MNIST, LeNet, fixed init, 10 steps × 3 epochs, 100 images, real batch
1,024) and ``fixed10`` (mnist_fixed_10: 1 step). ``--compare LABEL=SRC`` also measures another checkout's
``src/`` folder (e.g. the commit before a change) with the same command, in the same rounds.

    DATADISTILL_DATA=/work/shared/datasets python benchmarks/memory_vs_reference.py \\
        --reference-cmd "bash /path/to/ref/time_ref.sh {setting} {iterations} {threads}" \\
        --iterations 30 --threads 1 --repeats 3 --json runs/memory_vs_reference.json
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datadistill
from datadistill.artifacts import write_json
from datadistill.cli import checked_args, count_arg, run_script

PRESETS = {"fixed100": "mnist_fixed", "fixed10": "mnist_fixed_10"}
WARMUP = 2  # the reference driver's untimed first iterations, which it runs too


def _child(cmd: list[str] | str, env: dict[str, str], shell: bool = False) -> dict:
    """Run ``cmd`` to the end; its peak RSS (MiB, from wait4), wall seconds, exit status and output."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, shell=shell, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    # ru_maxrss is in KiB on Linux
    return {"rss": usage.ru_maxrss / 1024, "wall": wall, "rc": proc.returncode, "output": output}


def _reference(command: str, setting: str, threads: int, n: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = command.format(setting=setting, iterations=n, threads=threads)
    run = _child(cmd, env, shell=True)
    own = re.search(r"^REF .*peak_rss_mib=([0-9.]+)", run["output"], re.M)
    if run["rc"] != 0 or own is None:
        sys.exit(
            f"the reference command failed or printed no 'REF … peak_rss_mib=' line: {cmd}\n"
            f"{run['output'][-2000:]}"
        )
    return {"rss": run["rss"], "own_rss": float(own.group(1)), "wall": run["wall"]}


def _ours(src: str | None, setting: str, threads: int, n: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if src is not None:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "datadistill",
            "distill",
            "--config",
            PRESETS[setting],
            "--iterations",
            str(WARMUP + n),
            "--out",
            out,
            "--force",
        ]
        run = _child(cmd, env)
    if run["rc"] != 0:
        sys.exit(f"our distillation failed ({' '.join(cmd)}):\n{run['output'][-2000:]}")
    return {"rss": run["rss"], "wall": run["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-cmd", required=True, help="see the module docstring")
    parser.add_argument("--settings", nargs="+", default=["fixed100"], choices=list(PRESETS))
    parser.add_argument(
        "--iterations", type=count_arg, default=30, help="N: the runs do 2 + N iterations"
    )
    parser.add_argument("--threads", type=count_arg, default=1)
    parser.add_argument("--repeats", type=count_arg, default=3, help="interleaved rounds")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=SRC",
        help="also measure the datadistill in folder SRC (put on PYTHONPATH), e.g. before=/tmp/old/src",
    )
    parser.add_argument("--json", help="write the measurements here (rewritten after every round)")
    args = checked_args(parser)
    malformed = [item for item in args.compare if "=" not in item]
    if malformed:
        parser.error(f"--compare takes LABEL=SRC (e.g. before=/tmp/old/src), got {malformed[0]!r}")
    compare = dict(item.split("=", 1) for item in args.compare)
    sides = {"ours": None, **{label: str(Path(src).resolve()) for label, src in compare.items()}}

    rows = {s: {k: [] for k in ("reference", "reference_own", *sides)} for s in args.settings}
    walls = {s: {k: [] for k in ("reference", *sides)} for s in args.settings}
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
        "what": "peak RSS (MiB, ru_maxrss from wait4) of one child process per run; "
        f"{WARMUP} + {args.iterations} outer iterations on each side",
        "reference_cmd": args.reference_cmd,
        "ours": {
            "package": str(Path(datadistill.__file__).parent),
            **{k: v for k, v in sides.items() if v},
        },
        "peak_rss_mib": rows,
        "wall_s": walls,
    }
    for _ in range(args.repeats):
        for setting in args.settings:
            ref = _reference(args.reference_cmd, setting, args.threads, args.iterations)
            rows[setting]["reference"].append(ref["rss"])
            rows[setting]["reference_own"].append(ref["own_rss"])
            walls[setting]["reference"].append(ref["wall"])
            for label, src in sides.items():
                ours = _ours(src, setting, args.threads, args.iterations)
                rows[setting][label].append(ours["rss"])
                walls[setting][label].append(ours["wall"])
        if args.json:
            write_json(Path(args.json), report)

    labels = list(sides)
    print(
        f"peak RSS, MiB (median of {args.repeats}; min–max), {WARMUP} + {args.iterations} iterations, "
        f"{args.threads} thread(s)"
    )
    print("| setting | reference | " + " | ".join(labels) + " | ours − reference |")
    print("|---|---:|" + "---:|" * len(labels) + "---:|")
    for setting, row in rows.items():

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"

        delta = statistics.median(row["ours"]) - statistics.median(row["reference"])
        print(
            f"| {setting} | {cell(row['reference'])} | "
            + " | ".join(cell(row[label]) for label in labels)
            + f" | {delta:+.0f} |"
        )


if __name__ == "__main__":
    run_script(main)
