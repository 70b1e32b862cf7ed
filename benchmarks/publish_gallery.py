"""Publish run folders into the package gallery (src/datadistill/gallery/), re-measuring accuracy on the CPU.

    DATADISTILL_DATA=../shared/datasets python benchmarks/publish_gallery.py NAME=RUN_DIR[:MODELS] ... \
        [--describe NAME="text"]

An entry's description is kept when it is republished without --describe.

Prints the gallery table afterwards; docs/RESULTS.md records which runs (and commands) produced each entry.
"""

from __future__ import annotations

import argparse

from datadistill.cli import checked_args, run_script
from datadistill.cli import main as datadistill_cli
from datadistill.gallery import publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("entries", nargs="+", metavar="NAME=RUN_DIR[:MODELS]")
    parser.add_argument("--describe", nargs="*", default=[], metavar='NAME="text"')
    parser.add_argument(
        "--accuracy-json",
        nargs="*",
        default=[],
        metavar="NAME=FILE",
        help="dataset-protocol sets: take the accuracy from this `evaluate --json` file of the same set",
    )
    args = checked_args(parser)
    descriptions = dict(item.split("=", 1) for item in args.describe)
    measured = dict(item.split("=", 1) for item in args.accuracy_json)
    for entry in args.entries:
        name, source = entry.split("=", 1)
        run, _, models = source.partition(":")
        manifest = publish(
            run,
            name,
            models=int(models) if models else None,
            description=descriptions.get(name),  # None: keep the old text
            accuracy_json=measured.get(name),
        )
        acc = manifest["accuracy"]
        print(
            f"{name}: {acc['accuracy_mean']:.2f} ± {acc['accuracy_std']:.2f} over "
            f"{acc['n_models']} nets",
            flush=True,
        )
    datadistill_cli(["gallery"])


if __name__ == "__main__":
    run_script(main)
