"""Resumable state of a distillation run: what a checkpoint holds, writing it, reading it back.

A run folder holds ``checkpoint.safetensors`` and the one before it, ``checkpoint.prev.safetensors`` (both
written atomically: temp file + rename). Resuming reads the newest one that loads, refuses settings that would
change the result, and records the settings that may change (``RESUMABLE_CHANGES``) in the run's history.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import Tensor
from tqdm.auto import tqdm

from datadistill._version import __version__
from datadistill.artifacts import (
    CHECKPOINT_FILE,
    DISTILLED_FILE,
    check_writable,
    is_run_temporary,
    label_targets,
    load_tensors,
    save_tensors,
)
from datadistill.config import DistillConfig, to_dict
from datadistill.config.presets import read_yaml
from datadistill.data.sources import DEFAULT_TEST_FRACTION, looks_like_path
from datadistill.models.user import factory_root, make_importable, refuse_changed_signature
from datadistill.types import Steps

CHECKPOINT = CHECKPOINT_FILE
PREVIOUS_CHECKPOINT = "checkpoint.prev.safetensors"
# Settings that may differ between a run and its resumption (they do not change the distilled result).
RESUMABLE_CHANGES = {
    "iterations",
    "resume",
    "force",
    "out",
    "device",
    "eval_models",
    "eval_every",
    "checkpoint_every",
    "tensorboard",
    "data_dir",
    "lr",
    "decay_every",
    "decay_factor",
    "final_lr_fraction",
    "time_limit",
}
# A checkpoint written before a setting existed ran with the behaviour of this value (else: today's default).
SETTINGS_BEFORE_THEY_EXISTED = {"schedule": "step"}
# Resumable settings that are not worth a line in the run's history when they differ.
UNRECORDED_CHANGES = {"resume", "force", "out"}
# Settings that may name a file or folder: recorded absolute, compared as the paths they resolve to.
PATH_SETTINGS = ("dataset", "pretrained")
BEST_TENSORS = ("images", "labels", "raw_lrs")


@dataclass
class DistillState:
    """Everything that changes during distillation (what a checkpoint holds)."""

    images: Tensor  # [S, n, C, H, W], leaf
    labels: Tensor  # [S, n] int64, or [S, n, K] float logits (a leaf when learned)
    raw_lrs: Tensor  # [S·E], leaf; lrs = softplus(raw_lrs)
    optimizer: torch.optim.Adam
    iteration: int
    history: list[dict[str, Any]]
    label_kind: str = "softmax"  # how learned labels become targets (artifacts.label_targets)
    progress: float = (
        0.0  # how far through its lr schedule the run is, in [0, 1] (distill.outer_lr)
    )
    # with --val-size: the best iterate so far (its tensors, iteration and validation accuracy)
    best: dict[str, Any] | None = None
    # settings changed on --resume: [{"iteration": N, "changes": {name: [before, after]}}]
    resume_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # --init-images FOLDER: the iterations the set it went on from had (its own and all before them), kept
    # here so that --resume needs only the checkpoint, not the folder
    iterations_before: int | None = None
    # a user's data: the sha256 of what the run distils from, so that --resume refuses changed data
    data_sha256: str | None = None
    # {spec: network_signature} of the module:factory networks, so that --resume refuses an edited factory
    model_signatures: dict[str, dict[str, list[int]]] = dataclasses.field(default_factory=dict)

    def steps(self) -> Steps:
        return Steps(
            self.images, label_targets(self.labels, self.label_kind), F.softplus(self.raw_lrs)
        )

    def snapshot(self, val_accuracy: float) -> dict[str, Any]:
        """A detached copy of the learned tensors, tagged with the iteration and its validation accuracy."""
        return {
            "iteration": self.iteration,
            "val_accuracy": val_accuracy,
            **{k: getattr(self, k).detach().clone() for k in BEST_TENSORS},
        }

    def chosen(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images, labels, raw_lrs)`` of the result: the best validated iterate, else the last."""
        source = self.best if self.best is not None else vars(self)
        return tuple(source[k].detach() for k in BEST_TENSORS)

    def label_grad(self, d_targets: Tensor) -> Tensor:
        """∂L/∂labels from ∂L/∂targets (the chain rule through ``label_targets``)."""
        labels = self.labels.detach().requires_grad_()
        return torch.autograd.grad(label_targets(labels, self.label_kind), labels, d_targets)[0]


# (tensors, metadata) of one checkpoint
CheckpointContents = tuple[dict[str, Tensor], dict[str, str]]


def save_checkpoint(folder: Path, state: DistillState, cfg: DistillConfig) -> Path:
    """Write ``state`` (and ``cfg``) to ``folder/checkpoint.safetensors``, keeping the one before it."""
    return write_checkpoint(folder, checkpoint_contents(state, cfg))


def checkpoint_contents(state: DistillState, cfg: DistillConfig) -> CheckpointContents:
    """What ``save_checkpoint`` writes for ``state``, as copies: ``state`` and its optimizer move on in
    place, and ``distill`` writes a checkpoint only once the next meta-gradient from it came out finite."""
    tensors = {
        "images": state.images,
        "raw_lrs": state.raw_lrs,
        "labels": state.labels,
    }
    if state.best is not None:
        tensors.update({f"best.{k}": state.best[k] for k in BEST_TENSORS})
    opt = state.optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value)
    metadata = {
        "iteration": str(state.iteration),
        "param_groups": json.dumps(opt["param_groups"]),
        "config": json.dumps(to_dict(cfg)),
        "history": json.dumps(state.history),
        "schedule_progress": repr(state.progress),
        "resume_history": json.dumps(state.resume_history),
        **({"data_sha256": state.data_sha256} if state.data_sha256 else {}),
        **(
            {"model_signatures": json.dumps(state.model_signatures)}
            if state.model_signatures
            else {}
        ),
        "version": __version__,
    }
    roots = {spec: factory_root(spec) for spec in (cfg.model, *cfg.extra_models)}
    metadata["model_roots"] = json.dumps({k: v for k, v in roots.items() if v is not None})
    if state.iterations_before is not None:
        metadata["iterations_before"] = str(state.iterations_before)
    if state.best is not None:
        metadata["best"] = json.dumps({k: state.best[k] for k in ("iteration", "val_accuracy")})
    return {name: t.detach().clone() for name, t in tensors.items()}, metadata


def write_checkpoint(folder: Path, contents: CheckpointContents) -> Path:
    """Write ``checkpoint_contents``' result to ``folder/checkpoint.safetensors``, keeping the one before
    it as ``checkpoint.prev.safetensors``."""
    tensors, metadata = contents
    path, previous = folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT
    if path.exists():
        os.replace(path, previous)
    save_tensors(path, tensors, metadata)
    return path


def load_checkpoint(folder: Path, state: DistillState, cfg: DistillConfig) -> Path:
    """Restore ``state`` from the newest readable checkpoint in ``folder``; return its path.

    Raises:
        ValueError: no checkpoint loads, or ``cfg`` differs from the saved settings in a way that changes
            the result (``check_compatible``).
        FileNotFoundError: there is no checkpoint in ``folder``.
    """
    errors = []
    for path in (folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT):
        if not path.exists():
            continue
        try:
            tensors, meta = load_tensors(path, with_metadata=True)
        except ValueError as err:
            errors.append(str(err))
            tqdm.write(f"warning: {err}; trying the previous checkpoint", file=sys.stderr)
            continue
        changes = check_compatible(json.loads(meta["config"]), cfg, path)
        _check_same_data(meta.get("data_sha256"), state.data_sha256, cfg, path)
        _check_same_networks(json.loads(meta.get("model_signatures", "{}")), state, path)
        done = int(meta["iteration"])
        if cfg.iterations < done:  # the schedule would run backwards and config.yaml would disagree
            raise ValueError(
                f"--iterations {cfg.iterations} is below the {done} iterations {path} has done: "
                f"give --iterations {done} or more (or leave it out)"
            )
        _restore(state, tensors, meta)
        if changes:
            state.resume_history.append({"iteration": state.iteration, "changes": changes})
        return path
    if errors:
        raise ValueError(f"no usable checkpoint in {folder}: " + "; ".join(errors))
    raise FileNotFoundError(
        f"nothing to resume in {folder}: no {CHECKPOINT} there; run without --resume to start it"
    )


def _check_same_data(
    recorded: str | None, found: str | None, cfg: DistillConfig, path: Path
) -> None:
    """Refuse to go on from ``path`` with other data than it was distilled from (a user's data set whose
    files changed): the images learnt so far and the data's labels would no longer belong together."""
    if recorded is not None and found != recorded:
        raise ValueError(
            f"the data {cfg.dataset} changed since {path} was written (sha256 {recorded[:16]}… "
            f"recorded, {str(found)[:16]}… found): restore it to resume, or start a new run in "
            "another --out"
        )


def _check_same_networks(recorded: dict[str, Any], state: DistillState, path: Path) -> None:
    """Refuse to go on from ``path`` with a ``module:factory`` network edited since it was written: the
    images learnt so far would go on being distilled for another network than the run records."""
    for spec, signature in recorded.items():
        if spec in state.model_signatures:
            refuse_changed_signature(
                spec,
                signature,
                state.model_signatures[spec],
                f"restore the factory as it was to resume {path}, or start a new run in another --out",
            )


def anchor_paths(cfg: DistillConfig) -> DistillConfig:
    """``cfg`` with its ``PATH_SETTINGS`` that name an existing relative path made absolute, so that the
    run's ``config.yaml`` and checkpoint find them again from any working directory (``--resume``)."""
    absolute = {}
    for key in PATH_SETTINGS:
        value = getattr(cfg, key)
        if isinstance(value, str) and Path(value).expanduser().exists():
            absolute[key] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(cfg, **absolute)


def import_recorded_models(folder: Path, cfg: DistillConfig) -> None:
    """Make the ``module:factory`` networks of the run in ``folder`` importable from any working
    directory, from the folders its checkpoint recorded they were imported from."""
    for path in (folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT):
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError):  # missing or unreadable: load_checkpoint says which
            continue
        roots = json.loads(meta.get("model_roots", "{}"))
        for spec in (cfg.model, *cfg.extra_models):
            make_importable(spec, roots.get(spec))
        return


# settings whose None means a value: giving that value on --resume changes nothing
_NONE_MEANS = {"test_fraction": DEFAULT_TEST_FRACTION}


def _same_setting(key: str, then: Any, now: Any) -> bool:
    if key in PATH_SETTINGS and isinstance(then, str) and isinstance(now, str):
        return Path(then).expanduser().resolve() == Path(now).expanduser().resolve()
    if key in _NONE_MEANS:
        then, now = (_NONE_MEANS[key] if v is None else v for v in (then, now))
    return then == now


def _restore(state: DistillState, tensors: dict[str, Tensor], meta: dict[str, str]) -> None:
    """Copy a loaded checkpoint's tensors and metadata into ``state`` (in place)."""
    with torch.no_grad():
        state.images.copy_(tensors["images"])
        state.raw_lrs.copy_(tensors["raw_lrs"])
        if state.labels.is_floating_point():
            state.labels.copy_(tensors["labels"])
    opt_state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, slot = key.split(".", 2)
            opt_state.setdefault(int(index), {})[slot] = value
    groups = json.loads(meta["param_groups"])
    state.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    state.iteration = int(meta["iteration"])
    state.history = json.loads(meta["history"])
    state.progress = float(meta.get("schedule_progress", 0.0))
    state.resume_history = json.loads(meta.get("resume_history", "[]"))
    if "iterations_before" in meta:
        state.iterations_before = int(meta["iterations_before"])
    if "best" in meta:
        best = {k: tensors[f"best.{k}"].to(state.images.device) for k in BEST_TENSORS}
        state.best = {**json.loads(meta["best"]), **best}


def check_compatible(saved: dict[str, Any], cfg: DistillConfig, path: Path) -> dict[str, list[Any]]:
    """Refuse to resume with settings that change the result; return the allowed changes worth
    recording, ``{name: [before, after]}``."""
    now = to_dict(cfg)
    # a key newer than the checkpoint had its default then (or the behaviour the code had before it)
    defaults = {**to_dict(DistillConfig()), **SETTINGS_BEFORE_THEY_EXISTED}
    # With --val-size the evaluation points are the candidates for the result, so they must not move.
    resumable = RESUMABLE_CHANGES - ({"eval_every"} if cfg.val_size else set())
    then = {k: saved.get(k, defaults[k]) for k in now}
    differ = sorted(k for k in now if k not in resumable and not _same_setting(k, then[k], now[k]))
    if differ:
        detail = ", ".join(f"{k}: {then[k]!r} -> {now[k]!r}" for k in differ)
        raise ValueError(
            f"cannot resume {path}: settings differ from the checkpoint ({detail}); "
            "use the original settings or start a new run with another --out"
        )
    return {
        k: [then[k], now[k]] for k in sorted(resumable - UNRECORDED_CHANGES) if then[k] != now[k]
    }


def describe_changes(record: dict[str, Any]) -> str:
    """One line for a ``resume_history`` record: ``lr 0.05 -> 0.1, … from iteration N``."""
    changes = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in record["changes"].items())
    return f"{changes} from iteration {record['iteration']}"


def _refuse_out_in_data(out: Path, cfg: DistillConfig) -> None:
    refuse_inside_data(out, cfg.dataset, "--out")


def refuse_inside_data(out: Path, dataset: str | None, flag: str) -> None:
    """A run (or its pictures) written into an image folder would be read back as data (a folder or file
    beside class folders is one more class, or refused), so ``out`` never lies in or at ``dataset``'s
    folder, ``--force`` or not."""
    if not dataset or not looks_like_path(dataset):
        return
    data = Path(dataset).expanduser()
    if not data.is_dir():
        return
    folder, run = data.resolve(), Path(out).expanduser().resolve()
    if run == folder or folder in run.parents:
        raise ValueError(
            f"{flag} {out} is inside the data folder {dataset}: files written there would be read as "
            f"data by the next run on it; choose an {flag} outside it"
        )


def _written_by_distill(path: Path) -> bool:
    """True for a ``config.yaml`` that holds distill's settings (the one every run writes first)."""
    try:
        written = read_yaml(path)
    except (OSError, ValueError):  # not YAML: not ours
        return False
    settings = {f.name for f in dataclasses.fields(DistillConfig)}
    return isinstance(written, dict) and bool(written) and set(written) <= settings


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a distillation run, finished or checkpointed."""
    return any(
        (folder / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, DISTILLED_FILE)
    )


def check_run_folder(out: Path, cfg: DistillConfig) -> None:
    """Refuse an ``--out`` that cannot hold this run, before anything is computed or written.

    A finished or checkpointed run is only continued with ``--resume``; a folder holding anything else is
    only written into with ``--force``; a file, or a folder that cannot be written, is never used.
    """
    check_writable(out, "--out", folder=True)
    has_run = holds_run(out)
    if cfg.resume:
        if not any((out / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT)):
            raise FileNotFoundError(
                f"nothing to resume in {out}: no {CHECKPOINT} there; run without --resume to start it"
            )
        return
    _refuse_out_in_data(out, cfg)
    if not out.is_dir():
        return
    if has_run:
        raise FileExistsError(
            f"{out} already holds a distillation run: pass --resume to continue it, or choose another --out"
        )
    # what a run that stopped before its first checkpoint leaves (its config.yaml, temporaries) is ours to
    # replace; a config.yaml of the user's own is not
    others = sorted(
        p.name
        for p in out.iterdir()
        if not is_run_temporary(p.name) and not (p.name == "config.yaml" and _written_by_distill(p))
    )
    if others and not cfg.force:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise FileExistsError(
            f"--out {out} holds {shown} but no distillation run; choose a new or empty --out, or "
            "pass --force to write the run into it (files of the same names are replaced)"
        )
