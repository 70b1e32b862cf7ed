"""Does a distilled attack transfer, and what does it rely on? Perturb its images, compare pool and victims.

A distilled poisoning step (``datadistill attack`` / ``benchmarks/attack.py``) is learned on the pool's
training networks and judged on its held-out ones. This replays the same step, with its learned lr, after
perturbing the distilled images (Gaussian pixel noise in normalised units, a shift by whole pixels), on both
groups, and reports attack success (% of class-K test images predicted T) and accuracy on the other classes
(mean ± std over the networks). What survives a perturbation on the pool's own networks is what the step
does not fit to their exact weights.

Usage:
    DATADISTILL_DATA=/path/to/datasets python benchmarks/attack_transfer.py RUN_DIR \
        [--models 10] [--noise 0.1 0.3] [--shift 1 2] [--json runs/attack/transfer.json]

RUN_DIR is the ``distilled-KtoT`` folder of an attack run (a ``pretrained-random`` distilled set).
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from datadistill.artifacts import DistilledData
from datadistill.cli import checked_args, count_arg, run_script, seed_arg
from datadistill.experiments.attack_report import attack_report


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="distilled attack folder (distilled-KtoT)")
    p.add_argument("--models", type=count_arg, default=10, help="networks of each group")
    p.add_argument("--noise", type=float, nargs="*", default=[0.1, 0.3], help="pixel noise stds")
    p.add_argument("--shift", type=int, nargs="*", default=[1], help="shifts right, in pixels")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--json", type=Path)
    return checked_args(p)


def main() -> None:
    args = _parse()
    data = DistilledData.load(args.run)
    gen = torch.Generator().manual_seed(args.seed)
    variants = {"as distilled": data.images}
    for std in args.noise:
        variants[f"noise std {std:g}"] = data.images + std * torch.randn(
            data.images.shape, generator=gen
        )
    for pixels in args.shift:
        variants[f"shift {pixels} px"] = torch.roll(data.images, pixels, dims=-1)
    rows = []
    print("| images | networks | success K→T (%) | other classes after (%) | nets |")
    print("|---|---|---|---|---|")
    for name, images in variants.items():
        perturbed = DistilledData(images, data.labels, data.lrs, dict(data.manifest))
        for group, on in (("attacker's pool", "pool"), ("held-out victims", "heldout")):
            r = attack_report(perturbed, models=args.models, on=on)
            rows.append({"images": name, "networks": group, **r})
            print(
                f"| {name} | {group} | {r['success_mean']:.1f} ± {r['success_std']:.1f} | "
                f"{r['other_after_mean']:.1f} ± {r['other_after_std']:.1f} | {r['n_models']} |",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "run": str(args.run),
            "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "rows": [{k: v for k, v in r.items() if k != "per_network"} for r in rows],
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    run_script(main)
