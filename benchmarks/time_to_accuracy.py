"""Time to accuracy: when the distilled set first reaches given test accuracies, in distillation time.

Distils with a preset (or YAML file) and overrides through ``datadistill.distill``; every --check-every
iterations the distillation loop scores the current set on the full real test set (its curve: fixed init,
the run's one network; random init, the mean over 4 held-out inits) and records, per check, the distillation
time so far *without* the checks themselves (``elapsed_seconds`` in metrics.json; each check's own time is
``eval_seconds`` there). For each threshold the first check at or above it is reported. The checks' total
time is stated beside, so wall time = distillation time + checks + setup and final evaluation.

Optionally a reference command runs side by side (started together, one process each; give each its thread
count). It must print one JSON object per check on its stdout, ``{"elapsed_seconds": s, "accuracy": a}``
(its own time without its checks); other lines are ignored.

    DATADISTILL_DATA=../shared/datasets OMP_NUM_THREADS=2 python benchmarks/time_to_accuracy.py \
        --config mnist_fixed_quick --thresholds 90 95 96.6 --check-every 50 --json runs/tta.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import threading
import time
from pathlib import Path

import torch

import datadistill
from datadistill.cli import checked_args, count_arg, refuse_started_runs, run_script
from datadistill.config import DistillConfig, load_config, parse_assignments


def _parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` strings as DistillConfig values; a bad item exits with one line."""
    try:
        return parse_assignments(DistillConfig, items)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def first_reached(points: list[dict], thresholds: list[float]) -> list[dict]:
    """Per threshold: the first check whose accuracy is at or above it (None fields if never)."""
    rows = []
    for threshold in thresholds:
        hit = next((p for p in points if p["accuracy"] >= threshold), None)
        rows.append(
            {
                "threshold": threshold,
                "reached": hit is not None,
                "elapsed_seconds": hit["elapsed_seconds"] if hit else None,
                "iteration": hit.get("iteration") if hit else None,
                "accuracy": hit["accuracy"] if hit else None,
            }
        )
    return rows


def _run_ours(cfg: DistillConfig) -> dict:
    started = time.perf_counter()
    data = datadistill.distill(cfg, progress=False)
    wall = time.perf_counter() - started
    history = json.loads((Path(data.manifest["run_dir"]) / "metrics.json").read_text())
    points = [
        {
            "iteration": r["iteration"],
            "elapsed_seconds": r["elapsed_seconds"],
            "accuracy": r["accuracy"],
            "accuracy_std": r["accuracy_std"],
            "eval_seconds": r["eval_seconds"],
        }
        for r in history
        if "accuracy" in r
    ]
    return {
        "points": points,
        "iterations": data.manifest["iterations"],
        "final_accuracy": data.manifest["accuracy"]["accuracy_mean"],
        "checks_seconds": sum(p["eval_seconds"] for p in points),
        "distill_seconds": history[-1]["elapsed_seconds"] if history else 0.0,
        "wall_seconds": wall,  # setup, distillation, checks, final evaluation and saving
        "seconds_per_iteration": data.manifest["seconds_per_iteration"],
    }


def _run_reference(command: str, result: dict) -> None:
    started = time.perf_counter()
    proc = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
    points = []
    for line in proc.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and {"elapsed_seconds", "accuracy"} <= record.keys():
            points.append(record)
    result.update(
        points=points,
        returncode=proc.returncode,
        wall_seconds=time.perf_counter() - started,
        stderr_tail=proc.stderr[-2000:],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="mnist_fixed_quick", help="preset name or YAML file")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="DistillConfig overrides, e.g. iterations=3000 time_limit=6 betas=[0.9,0.999]",
    )
    parser.add_argument(
        "--thresholds", nargs="+", type=float, default=[90.0, 95.0, 96.6], metavar="PCT"
    )
    parser.add_argument(
        "--check-every", type=count_arg, default=50, help="iterations between test-accuracy checks"
    )
    parser.add_argument("--threads", type=count_arg, help="torch threads (default: torch's own)")
    parser.add_argument("--reference-cmd", help="a command to run side by side (see the top)")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="runs/time_to_accuracy", help="run folder")
    parser.add_argument("--json", default="runs/time_to_accuracy.json")
    args = checked_args(parser)
    refuse_started_runs(parser, [Path(args.out)])
    if not all(0 < t <= 100 for t in args.thresholds):
        raise ValueError(
            f"--thresholds are test accuracies in percent, in (0, 100], got {args.thresholds}"
        )
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = {
        **_parse_overrides(args.set),
        "eval_every": args.check_every,
        "data_dir": args.data_dir,
        "out": args.out,
    }
    cfg = load_config(DistillConfig, args.config, overrides)
    reference: dict = {}
    side = None
    if args.reference_cmd:
        side = threading.Thread(target=_run_reference, args=(args.reference_cmd, reference))
        side.start()
    ours = _run_ours(cfg)
    if side is not None:
        side.join()

    rows = {"ours": first_reached(ours["points"], args.thresholds)}
    if reference:
        rows["reference"] = first_reached(reference["points"], args.thresholds)
    report = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "config_name": args.config,
        "config": {k: v for k, v in vars(cfg).items() if k not in ("out", "data_dir")},
        "check_every": args.check_every,
        "ours": ours,
        "reference_cmd": args.reference_cmd,
        "reference": reference or None,
        "thresholds": rows,
    }
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))

    print(
        f"ours: {ours['iterations']} iterations, {ours['distill_seconds'] / 60:.2f} min distilling "
        f"(checks excluded: {len(ours['points'])} checks took {ours['checks_seconds']:.1f} s more; "
        f"wall {ours['wall_seconds'] / 60:.2f} min), final test accuracy {ours['final_accuracy']:.2f}"
    )
    print(
        "\n| who | threshold (%) | reached | distillation time, checks excluded | iteration | accuracy |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for who, table in rows.items():
        for r in table:
            seconds = r["elapsed_seconds"]
            minutes = f"{seconds / 60:.2f} min ({seconds:.1f} s)" if r["reached"] else "—"
            accuracy = f"{r['accuracy']:.2f}" if r["reached"] else "—"
            print(
                f"| {who} | {r['threshold']:g} | {'yes' if r['reached'] else 'no'} | {minutes} | "
                f"{r['iteration'] if r['iteration'] is not None else '—'} | {accuracy} |"
            )
    print(f"\nJSON: {json_path}")


if __name__ == "__main__":
    run_script(main)
