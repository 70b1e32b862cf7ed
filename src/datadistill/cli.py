"""Command line: parse, build a config, call the library. Nothing else lives here.

datadistill distill [--config mnist_fixed] [--dataset mnist] [--steps 10] …   learn a distilled set
datadistill evaluate RUN_DIR [--models N] [--json FILE]                       replay it on fresh networks
datadistill show RUN_DIR                                                      summary + image grids
datadistill datasets | models | presets                                       what is there
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import re
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml

from datadistill._version import __version__
from datadistill.config import DistillConfig, list_presets, load_config


def _field_help(cls) -> dict[str, str]:
    """The comments of each dataclass field, used as its --help text (one source of truth).

    A field's comments may follow its default on the same line or, when the formatter wrapped the default
    in parentheses, sit on the lines below it; they all belong to the field until the next one starts.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    helps: dict[str, list[str]] = {}
    field = None
    for line in inspect.getsource(cls).splitlines():
        start = re.match(r"\s+(\w+): ", line)
        if start and start.group(1) in names:
            field = start.group(1)
        elif re.match(r"\s+(def|@)", line):
            field = None  # the methods after the fields
        if field and "#" in line:
            helps.setdefault(field, []).append(line.split("#", 1)[1].strip())
    return {name: " ".join(parts) for name, parts in helps.items()}


def _add_dataclass_options(
    parser: argparse.ArgumentParser,
    cls,
    skip: Sequence[str] = (),
    preset: tuple[str, dict] | None = None,
) -> None:
    """One option per field of ``cls``; ``preset`` = (name, values) of the preset a bare command runs,
    whose values are shown as the defaults (with the dataclass's own beside them)."""
    preset_name, preset_values = preset or ("", {})
    helps = _field_help(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = (
            next((a for a in args if a is not type(None)), hint)
            if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
            else hint
        )
        text = helps.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        if f.name in preset_values and preset_values[f.name] != f.default:
            default = (
                f"{preset_values[f.name]} from the {preset_name} preset; {f.default} with "
                "--dataset or a --config that does not set it"
            )
        else:
            default = f.default
        kw = dict(dest=f.name, default=None, help=f"{text} (default: {default})")
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is tuple:
            parser.add_argument(flag, type=float, nargs=2, metavar=("B1", "B2"), **kw)
        else:
            parser.add_argument(flag, type=base, metavar=f.name.upper(), **kw)


DEFAULT_PRESET = "digits"  # what a bare `datadistill` / `datadistill distill` runs


def _bare_preset() -> dict:
    """The settings of the default preset, as a bare ``distill`` command applies them."""
    import yaml

    from datadistill.config import find_preset

    return yaml.safe_load(find_preset(DEFAULT_PRESET).read_text()) or {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadistill",
        description="Dataset distillation (Wang et al. 2018): learn a few synthetic images and step sizes "
        "that train a network. With no command, distills the embedded digits set.",
    )
    parser.add_argument("--version", action="version", version=f"datadistill {__version__}")
    sub = parser.add_subparsers(dest="command")

    bare = _bare_preset()
    p = sub.add_parser(
        "distill",
        help="learn distilled images and step sizes",
        description=f"With neither --config nor --dataset, the {DEFAULT_PRESET!r} preset applies first ("
        + ", ".join(f"{k} {v}" for k, v in bare.items())
        + "); the defaults below are what that bare command runs. --resume with --out alone "
        "continues a run with the settings in its config.yaml.",
    )
    p.add_argument(
        "--config",
        help=f"YAML file or preset name ({', '.join(list_presets())}); with neither --config nor "
        f"--dataset, the {DEFAULT_PRESET!r} preset (the embedded default job) runs",
    )
    _add_dataclass_options(p, DistillConfig, preset=(DEFAULT_PRESET, bare))

    p = sub.add_parser("evaluate", help="train fresh networks on a distilled set; test accuracy")
    p.add_argument(
        "run", metavar="RUN_DIR", help="folder with distilled.safetensors + manifest.json"
    )
    p.add_argument(
        "--models", type=int, help="networks to train (default: 1 fixed init, 200 random)"
    )
    p.add_argument("--json", help="also write the result as JSON to this file")
    p.add_argument(
        "--data-dir",
        help="real data folder (default: $DATADISTILL_DATA, else the cache); for a run on your own "
        "data that has moved: the folder now holding it (found by its file or folder name)",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument(
        "--protocol",
        choices=["replay", "dataset"],
        help="replay: the distilled steps in order with their learned lrs (the paper's protocol); "
        "dataset: train fresh networks on the images as an ordinary training set with the field's "
        "recipe (SGD m0.9, wd 5e-4, lr 0.01 /10 at half-way, batch 256, --epochs). Default: the "
        "protocol the set was distilled for (its manifest)",
    )
    p.add_argument(
        "--model",
        help="dataset protocol: the network to train (registered name or module:factory; default "
        "convnet, ConvNet-3 with 128 channels; adaptation sets default to their pre-trained networks)",
    )
    p.add_argument(
        "--epochs", type=int, help="dataset protocol: epochs of the field's recipe (default 300)"
    )
    p.add_argument(
        "--augment",
        choices=["none", "dsa"],
        default="none",
        help="dataset protocol: DSA-style augmentation of every minibatch (default none)",
    )

    p = sub.add_parser("show", help="summarise a distilled set and redraw its image grids")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--out", help="folder for the PNGs (default: RUN_DIR)")

    p = sub.add_parser("datasets", help="list data sets and where their files are")
    p.add_argument("--data-dir")
    sub.add_parser("models", help="list networks")
    sub.add_parser("presets", help="list the shipped YAML presets")
    for module_name in dict.fromkeys(PLUGGED_COMMANDS.values()):  # options live beside their code
        importlib.import_module(f"datadistill.{module_name}").add_cli(sub)
    return parser


def _cmd_distill(args: argparse.Namespace) -> int:
    from datadistill.distill import SETTINGS_BEFORE_THEY_EXISTED, distill

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)}
    if overrides["betas"] is not None:
        overrides["betas"] = tuple(overrides["betas"])
    if args.resume and args.config is None and args.out is not None:
        saved = Path(args.out) / "config.yaml"
        if saved.is_file():
            args.config = str(saved)  # the run's own settings; flags given here override them
            written = yaml.safe_load(saved.read_text()) or {}
            for key, value in SETTINGS_BEFORE_THEY_EXISTED.items():  # a run older than the key
                if key not in written and overrides[key] is None:
                    overrides[key] = value
    if args.resume and args.out is None:
        raise ValueError("--resume continues the run in --out: give --out RUN_DIR as well")
    if args.config is None and args.dataset is None:
        args.config = DEFAULT_PRESET  # the default job: the embedded data set, offline
    cfg = load_config(DistillConfig, args.config, overrides)
    data = distill(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    acc = data.manifest["accuracy"]
    print(
        f"distilled {data.images.shape[0]} steps x {data.images.shape[1]} images, {data.epochs} epochs; "
        f"test accuracy {acc['accuracy_mean']:.2f} ± {acc['accuracy_std']:.2f}% over "
        f"{acc['n_models']} network(s) (before training {acc['accuracy_before_mean']:.2f}%)\n"
        f"run folder: {data.manifest['run_dir']}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from datadistill.artifacts import DistilledData
    from datadistill.evaluate import FieldRecipe, evaluate, evaluate_as_dataset

    data = DistilledData.load(args.run)
    protocol = args.protocol or data.manifest.get("protocol") or "replay"
    if protocol == "dataset":
        result = evaluate_as_dataset(
            data,
            model=args.model,
            models=args.models,
            recipe=FieldRecipe(augment=args.augment),
            epochs=args.epochs,
            data_dir=args.data_dir,
            device=args.device,
            json_path=args.json,
        )
        print(result.table())
        return 0
    for flag, value in (("--model", args.model), ("--epochs", args.epochs)):
        if value is not None:
            raise ValueError(
                f"{flag} applies to the dataset protocol: add --protocol dataset, or drop {flag} to "
                "replay the set on the network it was distilled for"
            )
    if args.augment != "none":
        raise ValueError("--augment applies to the dataset protocol: add --protocol dataset")
    result = evaluate(
        data,
        models=args.models,
        data_dir=args.data_dir,
        device=args.device,
        json_path=args.json,
    )
    print(result.table())
    return 0


def _cmd_show(args: argparse.Namespace) -> int:

    from datadistill.artifacts import DistilledData, check_writable
    from datadistill.viz import save_step_grids

    data = DistilledData.load(args.run)
    m = data.manifest
    pictures = args.out or args.run
    check_writable(pictures, "--out FOLDER (where show draws the pictures)", folder=True)
    names = m.get("class_names") or [str(c) for c in range(m["num_classes"])]
    paths = save_step_grids(data.pixels(), data.targets(), data.lrs, names, pictures)
    acc = m.get("accuracy") or {}
    print(
        json.dumps(
            {
                k: m.get(k)
                for k in (
                    "dataset",
                    "data_source",
                    "model",
                    "init",
                    "steps",
                    "epochs",
                    "images_shape",
                    "soft_labels",
                    "label_targets",
                    "objective",
                )
            },
            indent=1,
        )
    )
    if all(isinstance(acc.get(k), int | float) for k in ("accuracy_mean", "accuracy_std")):
        print(
            f"accuracy {acc['accuracy_mean']:.2f} ± {acc['accuracy_std']:.2f}% over "
            f"{acc.get('n_models', '?')}"
        )
    lrs = data.lrs
    print(f"lrs: min {lrs.min():.4g}, max {lrs.max():.4g}")
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from datadistill.data import dataset_status

    rows = dataset_status(args.data_dir)
    print(f"{'name':<14} {'shape':<12} {'classes':>7}  {'present':<8} folder")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        present = "yes" if r["present"] else "no"
        print(f"{r['name']:<14} {shape:<12} {r['classes']:>7}  {present:<8} {r['folder']}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from datadistill.models import list_models

    print("\n".join(list_models()))
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    print("\n".join(list_presets()))
    return 0


# command -> module with add_cli(subparsers) / run_cli(args)
PLUGGED_COMMANDS = {
    "baselines": "baselines",
    "pretrain": "pretrain",
    "linear": "linear",
    "gallery": "gallery",
    "pull": "gallery",
    "attack": "attack",
}

COMMANDS = {
    "distill": _cmd_distill,
    "evaluate": _cmd_evaluate,
    "show": _cmd_show,
    "datasets": _cmd_datasets,
    "models": _cmd_models,
    "presets": _cmd_presets,
}


def _check_destinations(args: argparse.Namespace) -> None:
    """Every command's --json file and --out folder can be written: say so before any work is done."""
    from datadistill.artifacts import check_writable

    if getattr(args, "json", None) is not None:
        check_writable(args.json, "--json")
    if getattr(args, "out", None) is not None:
        check_writable(args.out, "--out", folder=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``datadistill`` console script. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # As `python -m` does, so that --model my_nets:make_net finds my_nets.py in the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    if not argv or argv[0].startswith("--") and argv[0] not in ("--help", "--version"):
        argv = [
            "distill",
            *argv,
        ]  # the default job: distill (the embedded digits set unless told otherwise)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _check_destinations(args)
        if args.command in PLUGGED_COMMANDS:
            module = importlib.import_module(f"datadistill.{PLUGGED_COMMANDS[args.command]}")
            return module.run_cli(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        if os.environ.get("DATADISTILL_DEBUG"):
            raise
        print(f"datadistill {args.command}: error: {err}", file=sys.stderr)
        return 1
    # A write the system refused after our checks (disk full, permissions changed meanwhile).
    except OSError as err:
        if os.environ.get("DATADISTILL_DEBUG"):
            raise
        where = f" {err.filename}" if err.filename else ""
        print(
            f"datadistill {args.command}: error: cannot access{where}: {err.strerror or err}; "
            "free space or choose another folder (see --out / --json)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
