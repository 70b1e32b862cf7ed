"""Command line: parse, build a config, call the library. Nothing else lives here.

datadistill distill [--config mnist_fixed] [--dataset mnist] [--steps 10] …   learn a distilled set
datadistill evaluate RUN_DIR [--models N] [--json FILE]                       replay it on fresh networks
datadistill show RUN_DIR                                                      summary + image grids
datadistill datasets | models | presets                                       what is there
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from datadistill._version import __version__
from datadistill.config import (
    AttackConfig,
    BaselinesConfig,
    DistillConfig,
    EvaluateConfig,
    LinearConfig,
    PretrainConfig,
    list_presets,
    load_config,
)
from datadistill.config.settings import comma_separated


def _base_type(hint: Any) -> Any:
    """``int`` for ``int | None``; the hint itself otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    append_default: bool = False,
    preset: tuple[str, dict] | None = None,
) -> None:
    """One option per field of the config dataclass ``cls``, from its type, default and metadata.

    Help is ``metadata["help"]``; ``metadata["cli"]`` adds choices, ``required``, ``metavar``, ``nargs``,
    ``positional`` or ``hidden`` (no option). With ``append_default`` (``distill``) every option's parsed
    default is None, so that a preset can fill what the command line leaves out, and the help ends with the
    default: the dataclass's, or with ``preset`` = (name, values) the preset's, with the dataclass's beside it.
    The other commands' help texts state their defaults themselves.
    """
    preset_name, preset_values = preset or ("", {})
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        cli = dict(f.metadata.get("cli", {}))
        if cli.pop("hidden", False):
            continue
        base = _base_type(hints[f.name])
        text = f.metadata.get("help", "")
        if append_default:
            if f.name in preset_values and preset_values[f.name] != f.default:
                default = (
                    f"{preset_values[f.name]} from the {preset_name} preset; {f.default} with "
                    "--dataset or a --config that does not set it"
                )
            else:
                default = f.default
            text = f"{text.replace('%', '%%')} (default: {default})"  # argparse formats help with %
            cli.setdefault("metavar", f.name.upper())
        positional = cli.pop("positional", False)
        kw: dict[str, Any] = dict(help=text or None, **cli)
        if positional:
            parser.add_argument(f.name, **kw)
            continue
        kw.update(dest=f.name, default=None if append_default else f.default)
        flag = "--" + f.name.replace("_", "-")
        if base is bool:
            kw.pop("metavar", None)
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is tuple and "nargs" in cli:  # e.g. --ratios 0.5 1 2
            if kw["default"] is not None:
                kw["default"] = list(kw["default"])
            parser.add_argument(flag, type=typing.get_args(base)[0], **kw)
        elif typing.get_origin(base) is tuple and typing.get_args(base)[1:] == (Ellipsis,):
            parser.add_argument(flag, type=comma_separated, **kw)  # e.g. --only a,b
        elif typing.get_origin(base) is tuple:  # a fixed number of floats: --betas B1 B2
            kw["metavar"] = ("B1", "B2")
            parser.add_argument(flag, type=float, nargs=2, **kw)
        elif base is str:
            parser.add_argument(flag, **kw)
        else:
            parser.add_argument(flag, type=base, **kw)


def _config_from_args(cls: type, args: argparse.Namespace, preset: str | None = None):
    """The validated ``cls`` of the parsed ``args`` (over ``preset`` when given)."""
    names = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("cli", {}).get("hidden")]
    return load_config(cls, preset, {name: getattr(args, name) for name in names})


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
    _add_config_options(p, DistillConfig, append_default=True, preset=(DEFAULT_PRESET, bare))

    p = sub.add_parser("evaluate", help="train fresh networks on a distilled set; test accuracy")
    _add_config_options(p, EvaluateConfig)

    p = sub.add_parser("show", help="summarise a distilled set and redraw its image grids")
    p.add_argument(
        "run", metavar="RUN_DIR", help="a run folder, or a name from `datadistill gallery`"
    )
    p.add_argument(
        "--out", help="folder for the PNGs (default: RUN_DIR; required for a released set)"
    )

    p = sub.add_parser(
        "export",
        help="write a distilled set's training images as pixels (.npz, or PNG folders per class)",
        description="For a trainer of your own: the decoded training images in pixel space. A .npz "
        "holds them exactly (images, labels or targets, step, lrs, mean, std, class_names); a folder gets "
        "8-bit PNGs in ImageFolder layout (<k>-<class>/<i>.png; values clipped to [0, 1]).",
    )
    p.add_argument(
        "run", metavar="RUN_DIR", help="a run folder, or a name from `datadistill gallery`"
    )
    # its own dest: the generic --out check wants a folder, export takes a file or a folder
    p.add_argument("--out", dest="export_to", required=True, help="a new .npz file or a new folder")

    p = sub.add_parser("datasets", help="list data sets and where their files are")
    p.add_argument("--data-dir")
    sub.add_parser("models", help="list networks")
    sub.add_parser("presets", help="list the shipped YAML presets")
    _add_experiment_parsers(sub)
    return parser


def _add_experiment_parsers(sub: argparse._SubParsersAction) -> None:
    """The experiments' commands: baselines, pretrain, linear, gallery / pull, attack."""
    p = sub.add_parser(
        "baselines",
        help="real-image baselines (random, optimised, k-means, average, 1-NN, full data) for a budget",
        description="Baselines for distilled data: what the same budget of real images achieves (Wang "
        "et al. 2018, §4.1, Table 1).",
    )
    _add_config_options(p, BaselinesConfig)
    p = sub.add_parser(
        "pretrain",
        help="train a pool of networks on real data (inits for --init pretrained-fixed|random)",
        description="Train --count networks (different seeds) on a real data set and save them as a pool "
        "for `datadistill distill --init pretrained-fixed|pretrained-random --pretrained DIR`. Recipe: "
        "Adam (betas .5/.999) with cosine decay; much shorter than the paper's 40 (MNIST) / 130 (USPS) "
        "epochs at lr 2e-4.",
    )
    _add_config_options(p, PretrainConfig)
    p = sub.add_parser(
        "linear",
        help="the linear case (§3.3): excess loss vs number of distilled points M / D",
        description=(
            "Distil M points + one lr for linear regression with the meta-gradient machinery and "
            "compare the excess loss on held-out inits with the analytic lower bound for M < D."
        ),
    )
    _add_config_options(p, LinearConfig)
    p = sub.add_parser(
        "gallery", help="list the released distilled sets that ship with the package"
    )
    p.add_argument(
        "--thumbnails", metavar="PNG", help="also draw each set's first images into this PNG"
    )
    p = sub.add_parser("pull", help="copy a released distilled set into a folder")
    p.add_argument("name", help="a name from `datadistill gallery`")
    p.add_argument("--out", help="destination folder (default: runs/<name>)")
    p = sub.add_parser(
        "attack",
        help="distil a targeted poisoning attack (class K -> T in one GD step) and report it",
        description="Pre-trained pool (reused, or pre-trained when --pretrained holds none) -> distil "
        "images and a step size that make networks predict class K as T after ONE GD step (objective "
        "poison) -> report success and other-class accuracy on held-out networks beside real-image "
        "baselines with the same budget (Wang et al. 2018, sec. 3.5).",
    )
    _add_config_options(p, AttackConfig)


def _cmd_distill(args: argparse.Namespace) -> int:
    from datadistill.checkpoint import SETTINGS_BEFORE_THEY_EXISTED
    from datadistill.config.presets import read_yaml
    from datadistill.distill import distill

    if args.betas is not None:
        args.betas = tuple(args.betas)
    if args.resume and args.config is None and args.out is not None:
        saved = Path(args.out) / "config.yaml"
        if saved.is_file():
            args.config = str(saved)  # the run's own settings; flags given here override them
            written = read_yaml(saved)
            for key, value in SETTINGS_BEFORE_THEY_EXISTED.items():  # a run older than the key
                if key not in written and getattr(args, key) is None:
                    setattr(args, key, value)
    if args.resume and args.out is None:
        raise ValueError("--resume continues the run in --out: give --out RUN_DIR as well")
    if args.config is None and args.dataset is None:
        args.config = DEFAULT_PRESET  # the default job: the embedded data set, offline
        if args.protocol == "dataset" and (args.steps is None or args.epochs is None):
            raise ValueError(
                f"with neither --config nor --dataset the {DEFAULT_PRESET!r} preset runs, and it is made for "
                "the replay protocol (10 steps x 3 epochs): for --protocol dataset add --steps 1 --epochs 1 "
                "--images-per-class N, or start from a preset made for it, e.g. --config mnist_10_per_class"
            )
    cfg = _config_from_args(DistillConfig, args, args.config)
    data = distill(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    acc = data.manifest["accuracy"]
    decoded = (
        f" ({data.images.shape[:2].numel() * data.formation**2} training images, --formation {data.formation})"
        if data.formation > 1
        else ""
    )
    print(
        f"distilled {data.images.shape[0]} steps x {data.images.shape[1]} images{decoded}, "
        f"{data.epochs} epochs; "
        f"test accuracy {acc['accuracy_mean']:.2f} ± {acc['accuracy_std']:.2f}% over "
        f"{acc['n_models']} network(s) (before training {acc['accuracy_before_mean']:.2f}%)\n"
        f"run folder: {data.manifest['run_dir']}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from datadistill.evaluate import evaluate_run
    from datadistill.gallery import locate

    cfg = _config_from_args(EvaluateConfig, args)
    if cfg.run is not None:  # a released set by name evaluates as its gallery folder
        cfg = dataclasses.replace(cfg, run=str(locate(cfg.run)))
    print(evaluate_run(cfg).table())
    return 0


def _cmd_baselines(args: argparse.Namespace) -> int:
    from datadistill.experiments.baselines import run_baselines

    report = run_baselines(_config_from_args(BaselinesConfig, args))
    print(
        f"{report.config['dataset']}, {report.config['model']}, {report.config['init']} init — {report.protocol}"
    )
    print(report.table())
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from datadistill.experiments.pretrain import pretrain

    manifest = pretrain(_config_from_args(PretrainConfig, args))
    acc = manifest["accuracy"]
    print(
        f"pre-trained {manifest['count']} {manifest['model']} networks on {manifest['dataset']} "
        f"({manifest['count'] - manifest['heldout']} train, {manifest['heldout']} held out) in "
        f"{manifest['train_seconds']:.0f} s; test accuracy {acc['mean']:.2f} ± {acc['std']:.2f}% "
        f"(min {acc['min']:.2f})\npool folder: {args.out}"
    )
    return 0


def _cmd_linear(args: argparse.Namespace) -> int:
    from datadistill.experiments.linear import format_table, run_linear

    problem, rows = run_linear(_config_from_args(LinearConfig, args))
    print(
        f"{problem.name}: D = {problem.dim}, O = {problem.out_dim}, L(θ*) = {problem.optimal_loss:.4f}"
    )
    print(format_table(rows))
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    from datadistill.gallery import list_gallery, save_thumbnails

    print(
        "| name | data set | distilled with | init | images | steps × epochs | protocol | "
        "accuracy (%) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in list_gallery():
        acc = f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} ({r['n_models']} nets)"
        labels = ", soft labels" if r["soft_labels"] else ""
        images = str(r["images"])
        if r["formation"] > 1:  # each stored image holds F×F training images
            images += f" ({r['training_images']} decoded)"
        protocol = r["protocol"]
        if protocol == "dataset":  # a fresh network of another architecture trained on the images
            protocol = f"dataset ({r['accuracy_network']})"
        print(
            f"| {r['name']} | {r['dataset']} | {r['model']} | {r['init']}{labels} | {images} | "
            f"{r['steps']} × {r['epochs']} | {protocol} | {acc} |"
        )
    if args.thumbnails:
        print(f"wrote {save_thumbnails(args.thumbnails)}")
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from datadistill.gallery import pull

    out = args.out or Path("runs") / str(args.name)
    if args.out is None:  # the default destination is checked as a given --out is
        from datadistill.artifacts import check_writable

        check_writable(out, "--out", folder=True)
    out = pull(args.name, out)
    print(f"copied {args.name} to {out}; try: datadistill evaluate {out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from datadistill.artifacts import DistilledData
    from datadistill.export import export_set
    from datadistill.gallery import locate

    data = DistilledData.load(locate(args.run))
    report = export_set(data, args.export_to)
    if report.kind == "npz":
        print(f"wrote {report.images} images to {report.path} (pixels, exact)")
    else:
        print(
            f"wrote {report.images} images to {report.path} as 8-bit PNGs per class "
            f"({100 * report.clipped:.2f}% of pixel values clipped to [0, 1]; a .npz keeps them exact)"
        )
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from datadistill.artifacts import write_json
    from datadistill.experiments.attack import attack_table, run_attack
    from datadistill.experiments.attack_heatmap import attack_heatmap

    cfg = _config_from_args(AttackConfig, args)
    if cfg.out is None:  # one folder for the run and the heat-map
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = dataclasses.replace(cfg, out=f"runs/attack-{Path(cfg.dataset).name}-{stamp}")
    result = run_attack(cfg)
    pool = result["pool"]
    print(
        f"attack {cfg.dataset} class {cfg.source_class} -> {cfg.target_class}, {cfg.init} "
        f"(pool {pool['train']} + {pool['heldout']} held out), one step on "
        f"{result['rows'][0]['images']} images\n"
    )
    print(attack_table(result))
    print(f"\nrun folder: {result['run_dir']}")
    if cfg.json:
        write_json(Path(cfg.json), result)
    if cfg.heatmap:
        attack_heatmap(cfg, cfg.heatmap, iterations=cfg.heatmap_iterations)
        print(f"heat-map: {cfg.heatmap}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:

    from datadistill.artifacts import DistilledData, check_writable
    from datadistill.checkpoint import refuse_inside_data
    from datadistill.gallery import GALLERY_DIR, locate
    from datadistill.viz import save_step_grids

    folder = locate(args.run)
    if args.out is None and folder.resolve().parent == GALLERY_DIR.resolve():  # by name or by path
        raise ValueError(
            f"{args.run} is a released set inside the package: give --out FOLDER for its pictures"
        )
    data = DistilledData.load(folder)
    m = data.manifest
    pictures = args.out or args.run
    check_writable(pictures, "--out FOLDER (where show draws the pictures)", folder=True)
    refuse_inside_data(Path(pictures), (m.get("data_source") or {}).get("path"), "--out")
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
                    "extra_models",
                    "init",
                    "protocol",
                    "steps",
                    "epochs",
                    "images_shape",
                    "formation",
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
    if data.formation > 1:
        stored = data.images.shape[:2].numel()
        print(
            f"formation {data.formation}: {stored} stored images decode to {stored * data.formation**2}"
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


COMMANDS = {
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
    "baselines": _cmd_baselines,
    "pretrain": _cmd_pretrain,
    "linear": _cmd_linear,
    "gallery": _cmd_gallery,
    "pull": _cmd_pull,
    "export": _cmd_export,
    "attack": _cmd_attack,
}


OUTPUT_FILES = ("json", "md")  # --json of every command and script; the scripts' Markdown --md
OUTPUT_FIGURES = (
    "plot",
    "thumbnails",
    "heatmap",
    "png",
)  # linear, gallery, attack; the scripts' --png


def _check_destinations(args: argparse.Namespace) -> None:
    """Every command's and script's output files, figures and --out folder can be written: say so before any
    work is done (``check_writable``, ``check_figure_path``)."""
    from datadistill.artifacts import check_figure_path, check_writable

    for name in ("out", "export_to", *OUTPUT_FILES, *OUTPUT_FIGURES):
        if getattr(args, name, None) == "":  # Path("") is the working directory
            flag = "--out" if name == "export_to" else f"--{name}"
            raise ValueError(f"{flag} is empty: give it a path")
    for name in OUTPUT_FILES:
        if getattr(args, name, None) is not None:
            check_writable(getattr(args, name), f"--{name}")
    if getattr(args, "out", None) is not None:
        check_writable(args.out, "--out", folder=True)
    for name in OUTPUT_FIGURES:
        if getattr(args, name, None) is not None:
            check_figure_path(getattr(args, name), f"--{name}")


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

    def work() -> int:
        _check_destinations(args)
        return COMMANDS[args.command](args)

    try:
        return _reporting_errors(f"datadistill {args.command}", work)
    except KeyboardInterrupt:
        resumable = hasattr(args, "resume")  # distill checkpoints as it goes
        tail = "; the last checkpoint is kept (continue with --resume)" if resumable else ""
        from datadistill.artifacts import CHECKPOINT_FILE

        out = getattr(args, "out", None)
        if resumable and out is not None and not (Path(out) / CHECKPOINT_FILE).exists():
            tail = "; no checkpoint was written yet: run the same command again to start over"
        print(f"interrupted{tail}", file=sys.stderr)
        return 130


def _reporting_errors(name: str, work: Callable[[], Any]) -> int:
    """Run ``work``; bad input (our ValueError, FileNotFoundError, FileExistsError, RuntimeError) and a write
    the system refused become one line ``name: error: …`` and status 1 (``DATADISTILL_DEBUG=1`` re-raises).
    Returns ``work``'s status: an int as it is, anything else (None, a script's result dict) as 0."""
    try:
        status = work()
        return status if isinstance(status, int) else 0
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        if os.environ.get("DATADISTILL_DEBUG"):
            raise
        print(f"{name}: error: {err}", file=sys.stderr)
        return 1
    # A write the system refused after our checks (disk full, permissions changed meanwhile).
    except OSError as err:
        if os.environ.get("DATADISTILL_DEBUG"):
            raise
        where = f" {err.filename}" if err.filename else ""
        fix = (
            "free space or choose another folder"
            if err.errno == errno.ENOSPC
            else "choose another path"
        )
        print(
            f"{name}: error: cannot access{where}: {err.strerror or err}; {fix} (see --out / --json)",
            file=sys.stderr,
        )
        return 1


def checked_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """``parser.parse_args(argv)`` for the scripts under ``benchmarks/``, with their outputs checked before any
    work as the command's are (``_check_destinations``): ``--json``/``--md`` files and ``--png``/``--plot``
    figures can be written and are none of a run's own files, ``--out`` can be a folder."""
    args = parser.parse_args(argv)
    _check_destinations(args)
    return args


def refuse_started_runs(parser: argparse.ArgumentParser, folders: Sequence[Path]) -> None:
    """For the scripts under ``benchmarks/`` that start distillations afresh: ``parser.error`` naming the
    first of ``folders`` that already holds a run (scripts have no ``--resume``; the command has)."""
    from datadistill.checkpoint import holds_run

    for folder in folders:
        if holds_run(folder):
            parser.error(
                f"{folder} already holds a distillation run: remove it or choose another --out "
                f"(continue it with `datadistill distill --resume --out {folder}`)"
            )


def count_arg(text: str) -> int:
    """An argparse ``type`` for the scripts' counts (networks, iterations, epochs…): a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def seed_arg(text: str) -> int:
    """An argparse ``type`` for the scripts' ``--seed``: a whole number in [0, 1e9), as every command takes."""
    from datadistill.config.settings import check_seed

    try:
        value = int(text)
        check_seed(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number in [0, 1e9), got {text!r}"
        ) from None
    return value


def run_script(main: Callable[[], Any]) -> NoReturn:
    """How the scripts under ``benchmarks/`` end: run their ``main`` and exit, with bad input reported as the
    ``datadistill`` command reports it (one line naming the problem, status 1), never a traceback."""
    sys.exit(_reporting_errors(Path(sys.argv[0]).name, main))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
