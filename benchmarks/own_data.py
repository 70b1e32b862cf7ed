"""Your own data gives the registered set's accuracy: USPS exported as a PNG folder and as a .npz.

USPS (``load_dataset("usps")``) is written to a temporary folder twice, as a user would hold it: an image folder
(``train/<digit>/*.png``, ``test/<digit>/*.png``, 8-bit gray, so pixels are rounded to 1/255) and a ``.npz``
(``x_train`` … as float32 pixels in [0, 1], exact). Each of the three (registered name, folder, npz) is then
distilled with the same settings (``datadistill.distill``: LeNet, fixed Xavier init, ``--steps`` × 1 image per
class, ``--epochs``, ``--iterations``) and its test accuracy measured by the run itself (replay protocol, the
one fixed network). The user sources are normalised with the mean/std measured on their own training split
instead of the registry's constants, and the folder's pixels are quantised, so the numbers are expected to
agree within the run-to-run spread, not to the bit; ``--seeds`` runs each source with several seeds to show
that spread.

Usage:
    DATADISTILL_DATA=/work/shared/datasets OMP_NUM_THREADS=1 \\
        python benchmarks/own_data.py --iterations 200 --json runs/own_data.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import datadistill
from datadistill.cli import checked_args, count_arg, run_script
from datadistill.data import load_dataset


def export_usps(folder: Path) -> tuple[Path, Path]:
    """Write USPS as ``folder/usps_png/{train,test}/<digit>/*.png`` and ``folder/usps.npz``; return both."""
    arrays = {}
    for split in ("train", "test"):
        data = load_dataset("usps", split)
        pixels = data.denormalize(data.images).clamp(0, 1)  # [N, 1, 16, 16] in [0, 1]
        arrays[f"x_{split}"] = pixels.numpy().astype(np.float32)
        arrays[f"y_{split}"] = data.labels.numpy()
        gray = (pixels[:, 0] * 255).round().to(torch.uint8).numpy()  # [N, 16, 16]
        for i, (img, label) in enumerate(zip(gray, data.labels.tolist(), strict=True)):
            target = folder / "usps_png" / split / data.class_names[label]
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(target / f"{i:05d}.png")
    np.savez(folder / "usps.npz", **arrays)
    return folder / "usps_png", folder / "usps.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=count_arg, default=10)
    parser.add_argument("--epochs", type=count_arg, default=3)
    parser.add_argument("--iterations", type=count_arg, default=200)
    parser.add_argument("--seeds", type=count_arg, default=1, help="seeds per source (0, 1, …)")
    parser.add_argument("--json", default="runs/own_data.json")
    args = checked_args(parser)

    settings = dict(
        model="lenet",
        init="fixed",
        steps=args.steps,
        epochs=args.epochs,
        images_per_class=1,
        iterations=args.iterations,
        schedule="step",  # the schedule its published rows were measured with
        eval_every=args.iterations,
        checkpoint_every=args.iterations,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="datadistill-own-data-") as tmp:
        started = time.perf_counter()
        png, npz = export_usps(Path(tmp))
        export_seconds = time.perf_counter() - started
        for label, dataset in (
            ("usps (registered)", "usps"),
            ("PNG folder", str(png)),
            (".npz", str(npz)),
        ):
            accs, seconds = [], []
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                data = datadistill.distill(
                    dataset=dataset, seed=seed, out=f"{tmp}/run-{len(rows)}-{seed}", progress=False,
                    **settings,
                )  # fmt: skip
                seconds.append(time.perf_counter() - t0)
                accs.append(data.manifest["accuracy"]["accuracy_mean"])
            rows.append(
                {
                    "source": label,
                    "accuracies": accs,
                    "mean": statistics.fmean(accs),
                    "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                    "seconds_per_run": statistics.fmean(seconds),
                    "normalisation": {"mean": data.manifest["mean"], "std": data.manifest["std"]},
                }
            )
    print(f"USPS, LeNet fixed init, {args.steps} steps x 1 image/class x {args.epochs} epochs, "
          f"{args.iterations} iterations, seeds 0..{args.seeds - 1} (replay accuracy on the test set)")  # fmt: skip
    print("| source | accuracy (%) | per seed | s/run |\n|---|---|---|---|")
    for r in rows:
        per_seed = ", ".join(f"{a:.2f}" for a in r["accuracies"])
        print(
            f"| {r['source']} | {r['mean']:.2f} ± {r['std']:.2f} | {per_seed} | "
            f"{r['seconds_per_run']:.0f} |"
        )
    result = {
        "settings": {**settings, "seeds": args.seeds},
        "rows": rows,
        "export_seconds": round(export_seconds, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}",
        "threads": torch.get_num_threads(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    run_script(main)
