"""What every command's settings share: the field helper, the defaults tables and the value checks.

Each check raises ValueError with one line naming the flag and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from typing import Any

from datadistill.data.loading import check_channels


def comma_separated(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: how list settings are written on the command line."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


# Starting pixels of a run (initial_state draws them); anything else is the folder of a set to go on from.
INIT_IMAGE_KINDS = ("noise", "real", "kmeans")
PROTOCOLS = ("replay", "dataset")  # what a set is distilled for (and evaluated with by default)
# Weight inits of fresh networks (models.initialization draws them); here so that config can check
# --init-scheme before a run folder is written, without importing torch.
INIT_SCHEMES = ("xavier", "kaiming", "orthogonal", "default")
INNER_OPTIMIZERS = ("sgd", "momentum", "adam")  # the dataset protocol's inner training
SCHEDULES = ("cosine", "step")  # how the outer Adam lr falls over a run (distill.outer_lr)
# The dataset protocol's augmentation of training minibatches: none, DSA's or DC's (augment.py).
AUGMENTATIONS = ("none", "dsa", "dc")
# Refusal of --vmap-inits with --inner-augment, raised by the config and by the batched meta-gradient itself.
VMAP_AUGMENT_CONFLICT = (
    "--vmap-inits shares one minibatch order between the inits and cannot draw each its own "
    "augmentation: drop --vmap-inits or --inner-augment"
)
# How many networks a number is measured on when the command is not told (--models, --eval-models): a fixed
# init always has its one network; random kinds (and pre-trained pools) this many held-out draws.
EVAL_NETWORKS = {
    "evaluate": 200,  # `datadistill evaluate`, replay protocol: the paper's 200 held-out inits
    "distill": 20,  # distillation's final evaluation of its result
    "baselines": 20,  # `datadistill baselines`
    "curve": 4,  # distillation's curve points, and the networks --val-size scores iterates on
    "dataset": 5,  # the dataset protocol: fresh networks trained the field's way
    "attack": 10,  # `datadistill attack`: held-out victims
    "attack_report": 20,  # attack_report() called from Python
}


def eval_networks(purpose: str, fixed: bool) -> int:
    """Networks to measure on by default for ``purpose`` (a key of ``EVAL_NETWORKS``); 1 for a fixed init."""
    return 1 if fixed else EVAL_NETWORKS[purpose]


def _setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its help text (``metadata["help"]``) and command-line extras (``"cli"``)."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli})


def with_overrides(cls: type, cfg: Any, overrides: dict[str, Any], command: str) -> dict[str, Any]:
    """The fields of ``cfg`` (a ``cls`` or None) with keyword ``overrides`` on top, as a dict for ``cls(**…)``.

    A Python caller's unknown keyword is one ValueError naming the closest setting (as an unknown YAML key
    or flag is), not a TypeError from the dataclass's ``__init__``. ``command``: the CLI command whose flags
    the settings are, e.g. ``distill``.
    """
    if cfg is not None and not isinstance(cfg, cls):
        raise ValueError(
            f"the first argument is a {cls.__name__} (cfg=), got a {type(cfg).__name__}; pass the settings "
            f"as keywords instead, e.g. {command}(dataset='digits')"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if key in ("config", "cfg_file", "preset"):
                hint = f" (a {cls.__name__} is passed as the first argument, cfg=)"
            raise ValueError(
                f"{key}=...: {key!r} is not one of the {cls.__name__} settings{hint}; they are the flags "
                f"of `datadistill {command} --help` with _ for -"
            )
    current = {name: getattr(cfg, name) for name in names} if cfg is not None else {}
    return {**current, **overrides}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def positive_int(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is an integer ≥ 1 (``name``: the setting, shown as its flag)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{flag(name)} must be a positive integer, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (``name``: the setting, shown as its flag)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{flag(name)} must be a positive number, got {value!r}")


# Seeds derived from --seed (seed + i, seed · k + j) stay within torch's range.
MAX_SEED = 1_000_000_000


def check_seed(value: Any) -> None:
    """Raise ValueError unless ``--seed`` is a whole number in [0, 1e9) (every command's seed)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_SEED:
        raise ValueError(f"--seed must be a whole number in [0, 1e9), got {value!r}")


DEVICE_NAMES = re.compile(r"cpu|cuda(:[0-9]+)?")  # where a command computes


def check_device(value: Any) -> None:
    """Raise ValueError unless ``--device`` reads ``cpu``, ``cuda`` or ``cuda:N`` (whether that GPU exists is
    ``distributed.resolve_device``'s to say, where the work runs)."""
    if not (isinstance(value, str) and DEVICE_NAMES.fullmatch(value)):
        raise ValueError(f"--device takes cpu, cuda or cuda:N, got {value!r}")


def is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_data_options(cfg: Any) -> None:
    """The data options a command shares (those of ``cfg``'s fields among ``resize``, ``pad``,
    ``channels``, ``test_fraction``): each None or in its range, refused with the flag and the range."""
    if getattr(cfg, "resize", None) is not None:
        positive_int("resize", cfg.resize)
    check_channels(getattr(cfg, "channels", None))
    pad = getattr(cfg, "pad", None)
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or pad < 0):
        raise ValueError(
            f"--pad must be a whole number of pixels >= 0, got {pad!r}; to make images "
            "smaller lower --resize instead (e.g. --resize 20 --pad 4 gives 28x28)"
        )
    fraction = getattr(cfg, "test_fraction", None)
    if fraction is not None and not (is_finite_number(fraction) and 0 < fraction < 1):
        raise ValueError(
            f"--test-fraction must be a number between 0 and 1 (e.g. 0.2), got {fraction!r}"
        )


def check_init_noise(value: Any) -> None:
    """Raise ValueError unless ``--init-noise`` is a finite number ≥ 0 (shared by distill and attack)."""
    if not (is_finite_number(value) and value >= 0):
        raise ValueError(
            "--init-noise must be a number >= 0 (relative to each weight tensor's rms), "
            f"got {value!r}"
        )


def check_source_weight(value: Any) -> None:
    """Raise ValueError unless ``--source-weight`` is a finite number > 0 (shared by distill and attack)."""
    if not (is_finite_number(value) and value > 0):
        raise ValueError(f"--source-weight must be a positive number, got {value!r}")


# what a setting's type hint accepts, and how to name it in a message
_KINDS = {
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
    str: ((str, os.PathLike), "text"),  # a path setting may be given as a Path
}
_PLURAL = {int: "whole numbers", float: "numbers", str: "texts"}


def check_kinds(cls: type, values: dict[str, Any]) -> None:
    """Refuse a value of the wrong kind for its setting, e.g. from YAML: a switch (a ``bool`` setting) set to
    anything but true / false (a ``3`` or ``maybe`` would otherwise switch it on silently), a number given as
    text, a list given as one number, None for a setting that must have a value. Settings with richer hints
    are left to ``validate``. ``values``: setting name -> value (unknown names are ``cls``'s to refuse)."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        hint = hints.get(name)  # an unknown name is cls's to refuse
        if hint is None:
            continue
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        options = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
        if value is None:
            if not (union and type(None) in typing.get_args(hint)):
                raise ValueError(f"{flag(name)} needs a value, got None")
            continue
        if bool in options:
            if not isinstance(value, bool):
                raise ValueError(
                    f"{flag(name)} is a switch: true or false, got {value!r} (on the command line: "
                    f"{flag(name)} or --no-{flag(name)[2:]})"
                )
            continue
        if len(options) != 1:
            continue
        kind = options[0]
        if typing.get_origin(kind) is tuple:
            comma_separated = typing.get_args(kind)[:1] == (str,) and isinstance(value, str)
            if not isinstance(value, (tuple, list)) and not comma_separated:
                raise ValueError(f"{flag(name)} takes a list, e.g. [0.9, 0.999], got {value!r}")
            element = typing.get_args(kind)[0]
            if isinstance(value, (tuple, list)) and element in _KINDS:
                accepted = _KINDS[element][0]
                if any(isinstance(v, bool) or not isinstance(v, accepted) for v in value):
                    raise ValueError(
                        f"{flag(name)} takes a list of {_PLURAL[element]}, got {value!r}"
                    )
            continue
        if kind in _KINDS:
            accepted, described = _KINDS[kind]
            if isinstance(value, bool) or not isinstance(value, accepted):
                raise ValueError(f"{flag(name)} must be {described}, got {value!r}")


def check_fields(cfg: Any) -> None:
    """``check_kinds`` on every setting of the config dataclass ``cfg`` (its ``validate`` calls this first, so
    that Python callers get the one-line refusals YAML and the command line get)."""
    check_kinds(type(cfg), {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    for f in dataclasses.fields(cfg):
        if isinstance(getattr(cfg, f.name), os.PathLike):  # stored, and written to YAML, as text
            setattr(cfg, f.name, os.fspath(getattr(cfg, f.name)))
