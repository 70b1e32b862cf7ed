"""Distilled sets and checkpoints on disk: safetensors tensors + a JSON manifest, never pickles.

A run folder holds ``distilled.safetensors`` (images ``[steps, per_step, C, H, W]``, labels, lrs
``[steps * epochs]``) and ``manifest.json`` (everything needed to rebuild the network, the init distribution and
the data normalisation, plus measured accuracy). Every write goes to a temporary file in the same folder and is
moved into place with ``os.replace``, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from datadistill._version import __version__
from datadistill.config.settings import PROTOCOLS
from datadistill.formation import decode_set, decode_steps
from datadistill.types import Steps

DISTILLED_FILE = "distilled.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
MANIFEST_FILE = "manifest.json"
LABEL_TARGETS = ("softmax", "free")
# Our own files in a run folder; their atomic-write temporaries are ``.<name>.<random>.tmp``.
RUN_FILES = (
    DISTILLED_FILE,
    MANIFEST_FILE,
    "config.yaml",
    "metrics.json",
    CHECKPOINT_FILE,
    "checkpoint.prev.safetensors",
)
RUN_FIGURES = ("curve.png", "steps.png")  # drawn once by distill (show redraws only the steps)


class InvalidArtifact(ValueError):
    """A distilled set, checkpoint or manifest on disk is damaged or inconsistent.

    The message is one line naming the file, the key or tensor, and what was expected. It is a
    ``ValueError``, so callers (and the CLI) that catch bad input catch it too.
    """


def label_targets(labels: Tensor, kind: str = "softmax") -> Tensor:
    """What the inner loss trains on, from stored labels: classes stay classes, learned labels become targets.

    Args:
        labels: ``[..., n]`` int64 classes, or ``[..., n, K]`` learned label parameters.
        kind: ``"softmax"``: the parameters are logits and the target is ``softmax(labels)`` (each sums to
            one); ``"free"``: the parameters are the target vectors themselves (any scale or sign, as in the
            soft-label follow-up of Sucholutsky & Schonlau 2019).
    """
    if not labels.is_floating_point():
        return labels
    if kind == "softmax":
        return labels.softmax(dim=-1)
    if kind == "free":
        return labels
    raise ValueError(f"unknown label targets {kind!r}: choose one of {', '.join(LABEL_TARGETS)}")


@dataclass
class DistilledData:
    """A distilled data set: the images, labels and step sizes to replay, and how they were made.

    Attributes:
        images: ``[steps, per_step, C, H, W]`` in the normalised pixel space of ``manifest["mean"/"std"]``.
        labels: ``[steps, per_step]`` int64 classes, or ``[steps, per_step, K]`` learned label parameters
            (logits or free targets, per ``manifest["label_targets"]``; ``targets()`` gives what training uses).
        lrs: ``[steps * epochs]`` positive step sizes, update t uses ``images[t % steps]``.
        manifest: JSON-able facts: dataset, model, init kind and seed, steps, epochs, normalisation, accuracy, …
    """

    images: Tensor
    labels: Tensor
    lrs: Tensor
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return self.images.shape[0]

    @property
    def epochs(self) -> int:
        return self.lrs.shape[0] // self.num_steps

    @property
    def soft_labels(self) -> bool:
        return self.labels.is_floating_point()

    @property
    def label_targets(self) -> str:
        """How learned labels become training targets: ``"softmax"`` (logits; older sets) or ``"free"``."""
        return self.manifest.get("label_targets") or "softmax"

    def targets(self) -> Tensor:
        """The labels as training uses them: ``[S, n]`` classes or ``[S, n, K]`` soft targets."""
        return label_targets(self.labels, self.label_targets)

    @property
    def formation(self) -> int:
        """F: every stored image holds F×F training images (``--formation``; 1 for sets from before it)."""
        return int(self.manifest.get("formation") or 1)

    def training_set(self) -> tuple[Tensor, Tensor]:
        """The set as an ordinary training set: images ``[N, C, H, W]`` decoded (``formation.decode_set``) and
        their ``[N]`` classes or ``[N, K]`` soft targets; N = steps · per_step · F²."""
        return decode_set(self.images, self.targets(), self.formation)

    def normalisation(self) -> tuple[Tensor, Tensor]:
        """The data normalisation the images live in: the manifest's ``mean`` and ``std``, ``[C]`` each."""
        missing = [k for k in ("mean", "std") if self.manifest.get(k) is None]
        if missing:
            raise InvalidArtifact(
                f"the manifest has no {' or '.join(missing)} (the data normalisation), so the pixels "
                "cannot be recovered; add them (lists with one number per channel) to manifest.json"
            )
        return torch.tensor(self.manifest["mean"]), torch.tensor(self.manifest["std"])

    def pixels(self) -> Tensor:
        """The images de-normalised by the manifest's mean/std: ``[S, n, C, H, W]``, about [0, 1]."""
        mean, std = self.normalisation()
        return self.images * std.view(-1, 1, 1) + mean.view(-1, 1, 1)

    def steps(self) -> Steps:
        """The schedule as ``unroll`` replays it: every step's images decoded (``--formation``), with their
        targets and the learned lrs."""
        return decode_steps(Steps(self.images, self.targets(), self.lrs), self.formation)

    def check(self) -> None:
        """Refuse a set built or edited in Python that training would misread, or that ``save`` would write
        and ``load`` then refuse: ``check_distilled`` on the tensors and the manifest ``save`` writes.

        Raises:
            InvalidArtifact: one line naming the attribute or manifest key and what it must be.
        """
        where = "DistilledData"
        for name in ("images", "labels", "lrs"):
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise InvalidArtifact(
                    f"{where}.{name} must be a torch.Tensor, got {type(value).__name__}"
                    + (" (convert it with torch.from_numpy)" if hasattr(value, "__array__") else "")
                )
        if not isinstance(self.manifest, dict):
            raise InvalidArtifact(
                f"{where}.manifest must be a dict, got {type(self.manifest).__name__}"
            )
        if self.images.dim() != 5:
            raise InvalidArtifact(
                f"{where}.images is {list(self.images.shape)}; expected [steps, per_step, C, H, W]"
            )
        if self.lrs.dim() != 1 or not self.lrs.numel() or self.lrs.shape[0] % self.num_steps:
            raise InvalidArtifact(
                f"{where}.lrs is {list(self.lrs.shape)}; expected one step size per update, "
                f"[steps x epochs] with steps = {self.num_steps}"
            )
        check_distilled(
            {"images": self.images, "labels": self.labels, "lrs": self.lrs},
            self._manifest_to_write(),
            tensor_path=where,
            manifest_path=f"{where}.manifest",
            fix="correct it before use",
        )

    def digest(self) -> str:
        """sha256 of the images, labels and step sizes (dtype, shape and bytes of each)."""
        return _digest({"images": self.images, "labels": self.labels, "lrs": self.lrs})

    def _manifest_to_write(self) -> dict[str, Any]:
        manifest = _without_stale_accuracy({"version": __version__, **self.manifest}, self.digest())
        manifest.update(
            steps=self.num_steps,
            epochs=self.epochs,
            images_shape=list(self.images.shape),
            soft_labels=self.soft_labels,
            label_targets=self.label_targets if self.soft_labels else None,
        )
        return manifest

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``distilled.safetensors`` and ``manifest.json`` into ``folder`` (created if needed).

        Everything is checked before anything is written: the set (``check``), that the manifest is JSON,
        and that ``folder`` holds no distilled set already (unless ``overwrite``).

        Raises:
            InvalidArtifact: the set is malformed, or a manifest value cannot be stored as JSON.
            FileExistsError: ``folder`` already holds a distilled set, or is a file.
        """
        if not isinstance(folder, str | os.PathLike):
            raise ValueError(f"save takes a folder path, got {type(folder).__name__}")
        folder = Path(folder)
        self.check()
        manifest = self._manifest_to_write()
        text = _json_text(manifest, "DistilledData.manifest")
        if (folder / DISTILLED_FILE).exists() and not overwrite:
            raise FileExistsError(
                f"{folder} already holds a distilled set ({DISTILLED_FILE}); save to another folder, "
                "or pass overwrite=True to replace it"
            )
        check_writable(folder, "the folder", folder=True)
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(
            folder / DISTILLED_FILE, {"images": self.images, "labels": self.labels, "lrs": self.lrs}
        )
        _replace_atomically(folder / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(text))
        self.manifest = manifest
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DistilledData:
        """Read a distilled set written by ``save`` (or a run folder of ``datadistill distill``).

        Raises:
            FileNotFoundError: the folder holds no distilled set.
            InvalidArtifact: a file is damaged, or the manifest and the tensors disagree (``check_distilled``).
        """
        folder = Path(folder)
        path, manifest_path = folder / DISTILLED_FILE, folder / MANIFEST_FILE
        if not path.is_file() or not manifest_path.is_file():
            # a bare name that is not a folder is likely a released set's (the gallery sits above us)
            released = (
                f", or for a released set datadistill.load_pretrained({str(folder)!r})"
                if not folder.exists() and len(folder.parts) == 1
                else ""
            )
            if (folder / CHECKPOINT_FILE).is_file():
                raise FileNotFoundError(
                    f"{folder} holds a run that has not finished (a checkpoint, no {DISTILLED_FILE}): "
                    f"finish it with `datadistill distill --resume --out {folder}`"
                )
            raise FileNotFoundError(
                f"no distilled set in {folder}: expected {DISTILLED_FILE} and {MANIFEST_FILE}; "
                f"pass the --out folder of a finished `datadistill distill` run{released}"
            )
        tensors = load_tensors(path)
        missing = {"images", "labels", "lrs"} - tensors.keys()
        if missing:
            raise InvalidArtifact(
                f"{path} is not a distilled set: tensors {sorted(missing)} are missing"
            )
        manifest = read_manifest(manifest_path)
        check_distilled(tensors, manifest, tensor_path=path, manifest_path=manifest_path)
        manifest = _without_stale_accuracy(manifest, _digest(tensors))
        pretrained = manifest.get("pretrained")
        if pretrained and not Path(pretrained).is_absolute():
            # Released sets carry their pre-trained network beside them (``gallery.publish``).
            manifest["pretrained"] = str(folder / pretrained)
        return cls(tensors["images"], tensors["labels"], tensors["lrs"], manifest)


def _without_stale_accuracy(manifest: dict[str, Any], digest: str) -> dict[str, Any]:
    """``manifest`` less its ``accuracy`` when that was measured on other tensors than ``digest`` names (a
    set edited after it was measured): the number is a claim about pixels that are no longer there."""
    measured = manifest.get("accuracy")
    if isinstance(measured, dict) and measured.get("tensors_sha256") not in (None, digest):
        return {k: v for k, v in manifest.items() if k != "accuracy"}
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; InvalidArtifact naming the file if it is not one."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InvalidArtifact(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "restore it from a copy of the run"
        ) from err
    except UnicodeDecodeError as err:
        raise InvalidArtifact(
            f"{path} is not valid JSON (not UTF-8 text); restore it from a copy of the run"
        ) from err
    if not isinstance(manifest, dict):
        raise InvalidArtifact(
            f"{path} must hold a JSON object of key: value, got {type(manifest).__name__}; "
            "restore it from a copy of the run"
        )
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# Keys every manifest has had since the first release, and what commands read from them.
_REQUIRED_KEYS: dict[str, tuple[str, Any]] = {
    "dataset": ("a data set name (text)", lambda v: isinstance(v, str) and v != ""),
    "model": ("a model name (text)", lambda v: isinstance(v, str) and v != ""),
    "init": ("an init kind (text)", lambda v: isinstance(v, str) and v != ""),
    "steps": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "epochs": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "num_classes": ("an integer >= 2", lambda v: _is_int(v) and v >= 2),
    "images_shape": (
        "a list of 5 positive integers [steps, per_step, C, H, W]",
        lambda v: isinstance(v, list) and len(v) == 5 and all(_is_int(d) and d > 0 for d in v),
    ),
}
# Keys older or hand-made manifests may lack; when present they must have these types (None allowed).
_OPTIONAL_KEYS: dict[str, tuple[str, Any]] = {
    "mean": (
        "a list of finite numbers, one per channel",
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_number(x) for x in v),
    ),
    "std": (
        "a list of positive finite numbers, one per channel",
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_number(x) and x > 0 for x in v),
    ),
    "class_names": ("a list of class names", lambda v: isinstance(v, list)),
    "pretrained": ("a folder (text)", lambda v: isinstance(v, str)),
    "init_scheme": ("a weight-init scheme name (text)", lambda v: isinstance(v, str)),
    "label_targets": (
        f"one of {', '.join(LABEL_TARGETS)}",
        lambda v: v in LABEL_TARGETS,
    ),
    "soft_labels": ("true or false", lambda v: isinstance(v, bool)),
    "protocol": (f"one of {', '.join(PROTOCOLS)}", lambda v: v in PROTOCOLS),
    "accuracy": ("an object of measured accuracies", lambda v: isinstance(v, dict)),
    **{
        key: ("an integer", _is_int)
        for key in ("seed", "init_seed", "source_class", "target_class", "images_per_class")
    },
    **{
        key: ("a positive integer", lambda v: _is_int(v) and v > 0)
        for key in ("resize", "channels", "formation")
    },
    "pad": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
}


def check_distilled(
    tensors: dict[str, Tensor],
    manifest: dict[str, Any],
    *,
    tensor_path: str | Path = DISTILLED_FILE,
    manifest_path: str | Path = MANIFEST_FILE,
    fix: str = "restore the run from a copy, or distill it again",
) -> None:
    """Refuse a distilled set whose manifest or tensors are malformed or disagree with each other.

    Checks the manifest's keys and types, that the tensors have the shapes it states (images
    ``[steps, per_step, C, H, W]``, labels ``[steps, per_step]`` classes or ``[steps, per_step, K]``
    learned labels, lrs ``[steps * epochs]``), that pixels and labels are finite, class labels lie in
    ``0 … num_classes - 1`` and every step size is positive and finite.

    Raises:
        InvalidArtifact: one line naming the file, the key and what was expected.
    """
    for key, (what, ok) in _REQUIRED_KEYS.items():
        if key not in manifest:
            raise InvalidArtifact(
                f"{manifest_path}: key {key!r} is missing; expected {what}; {fix}"
            )
        if not ok(manifest[key]):
            raise InvalidArtifact(
                f"{manifest_path}: key {key!r} is {manifest[key]!r}; expected {what}; {fix}"
            )
    for key, (what, ok) in _OPTIONAL_KEYS.items():
        if manifest.get(key) is not None and not ok(manifest[key]):
            raise InvalidArtifact(
                f"{manifest_path}: key {key!r} is {manifest[key]!r}; expected {what}; {fix}"
            )
    shape, steps, epochs = manifest["images_shape"], manifest["steps"], manifest["epochs"]
    channels, num_classes = shape[2], manifest["num_classes"]
    if shape[0] != steps:
        raise InvalidArtifact(
            f"{manifest_path}: key 'steps' is {steps} but key 'images_shape' {shape} starts with "
            f"{shape[0]}; expected the same number of steps; {fix}"
        )
    for key in ("mean", "std"):
        values = manifest.get(key)
        if values is not None and len(values) not in (1, channels):
            raise InvalidArtifact(
                f"{manifest_path}: key {key!r} has {len(values)} values; expected 1 or {channels} "
                f"(the channels of images_shape {shape}); {fix}"
            )
    formation = manifest.get("formation") or 1
    if shape[3] % formation or shape[4] % formation:
        raise InvalidArtifact(
            f"{manifest_path}: key 'formation' is {formation} but the images are {shape[3]}x{shape[4]}; "
            f"expected a factor that divides both (each image holds formation x formation tiles); {fix}"
        )
    names = manifest.get("class_names")
    if names is not None and len(names) != num_classes:
        raise InvalidArtifact(
            f"{manifest_path}: key 'class_names' has {len(names)} names; expected "
            f"num_classes = {num_classes}; {fix}"
        )

    images, labels, lrs = tensors["images"], tensors["labels"], tensors["lrs"]
    if images.dtype != torch.float32 or list(images.shape) != shape:
        raise InvalidArtifact(
            f"{tensor_path}: images are {str(images.dtype).removeprefix('torch.')} "
            f"{list(images.shape)} but {manifest_path} says images_shape {shape} (steps {steps}); "
            f"expected float32 images of that shape; {fix}"
        )
    if not torch.isfinite(images).all():
        raise InvalidArtifact(
            f"{tensor_path}: images hold NaN or infinite pixels; expected finite pixels; {fix}"
        )
    if labels.is_floating_point():
        expected_labels = [steps, shape[1], num_classes]
        if (
            labels.dtype != torch.float32
            or list(labels.shape) != expected_labels
            or not torch.isfinite(labels).all()
        ):
            raise InvalidArtifact(
                f"{tensor_path}: learned labels are {str(labels.dtype).removeprefix('torch.')} "
                f"{list(labels.shape)}; expected finite float32 values of "
                f"shape {expected_labels} (steps, per_step, num_classes from {manifest_path}); {fix}"
            )
    else:
        expected_labels = [steps, shape[1]]
        if list(labels.shape) != expected_labels or labels.dtype != torch.int64:
            raise InvalidArtifact(
                f"{tensor_path}: labels are {str(labels.dtype).removeprefix('torch.')} "
                f"{list(labels.shape)}; expected int64 classes of shape {expected_labels} "
                f"(steps, per_step from {manifest_path}); {fix}"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise InvalidArtifact(
                f"{tensor_path}: labels hold classes outside 0…{num_classes - 1} (num_classes in "
                f"{manifest_path}); {fix}"
            )
    if not lrs.is_floating_point() or list(lrs.shape) != [steps * epochs]:
        raise InvalidArtifact(
            f"{tensor_path}: lrs are {str(lrs.dtype).removeprefix('torch.')} {list(lrs.shape)}; "
            f"expected {steps * epochs} float step sizes (steps {steps} x epochs {epochs} in "
            f"{manifest_path}); {fix}"
        )
    if not (torch.isfinite(lrs) & (lrs > 0)).all():
        bad = lrs[~(torch.isfinite(lrs) & (lrs > 0))][0].item()
        raise InvalidArtifact(
            f"{tensor_path}: lrs hold the step size {bad}; expected positive finite step sizes; {fix}"
        )


def _can_write_into(folder: Path) -> bool:
    """Whether new files can be created in the existing ``folder``.

    The mode bits are checked as well as a real probe, because root may write into a folder someone made
    read-only on purpose, and only a probe finds a read-only mount.
    """
    try:
        if not folder.stat().st_mode & 0o222 or not os.access(folder, os.W_OK):
            return False
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".datadistill-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError:
        return False
    return True


def check_writable(path: str | Path, flag: str, *, folder: bool = False) -> None:
    """Refuse, before any work is done, a destination that cannot be written.

    Args:
        path: the file to be written, or with ``folder=True`` the folder to be created or written into.
        flag: the option that chose ``path`` (named in the message as the thing to change).

    Raises:
        ValueError: one line naming the path, why it cannot be written and the flag to change.
        FileExistsError: a file stands where the folder should be, or a folder where the file should.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise FileExistsError(
            f"{path} is an existing file, not a folder; choose another {flag} (or move the file away)"
        )
    if not folder and path.is_dir():
        raise FileExistsError(f"{path} is a folder; give {flag} a file path")
    holds_run = any((path.parent / name).is_file() for name in (DISTILLED_FILE, CHECKPOINT_FILE))
    if not folder and path.name in RUN_FILES + RUN_FIGURES and holds_run:
        raise FileExistsError(
            f"{flag} {path} would overwrite the run's own {path.name}; write it to another file, "
            f"e.g. {flag} {path.parent / ('report' + path.suffix)}"
        )
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FileExistsError(
            f"cannot write {path}: {existing} is a file, not a folder; choose another {flag}"
        )
    if not _can_write_into(existing):
        raise ValueError(f"cannot write {path}: {existing} is read-only; choose another {flag}")


# What matplotlib's Agg backend writes; the figures' flags take any of them (PNG is what the docs show).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_figure_path(path: str | Path, flag: str) -> None:
    """``check_writable`` for a figure, plus a file type matplotlib can write (say so before the work).

    Raises:
        ValueError: the name does not end in one of ``FIGURE_SUFFIXES``, or the path cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        kinds = ", ".join(FIGURE_SUFFIXES)
        raise ValueError(
            f"{flag} {path}: a figure must end in one of {kinds}; e.g. {flag} {path.with_suffix('.png')}"
        )
    check_writable(path, flag)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries of our atomic writes (``.<name>.*.tmp``) that a killed process left in
    ``folder``; other files are never touched. Returns the paths removed."""
    folder = Path(folder)
    removed = (
        sorted(p for p in folder.iterdir() if is_run_temporary(p.name)) if folder.is_dir() else []
    )
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def is_run_temporary(name: str) -> bool:
    """True for the name of an atomic-write temporary of one of our run files (``.<name>.*.tmp``)."""
    return any(fnmatch.fnmatchcase(name, f".{run_file}.*.tmp") for run_file in RUN_FILES)


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it
    os.umask(mask)
    return mask


def _replace_atomically(path: Path, write) -> None:
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp's (and safetensors') 0600 would hide a run from the user's group
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_text(obj: dict[str, Any], where: str) -> str:
    """``obj`` as the indented JSON ``write_json`` writes; ValueError naming the first key JSON cannot hold."""
    try:
        return json.dumps(obj, indent=2) + "\n"
    except (TypeError, ValueError):
        for key, value in obj.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise InvalidArtifact(
                    f"{where}[{key!r}] holds a {type(value).__name__}, which JSON cannot store; convert it "
                    "to plain numbers, text, lists or dicts (e.g. float(x), x.tolist())"
                ) from None
        raise


def as_distilled(data: Any) -> DistilledData:
    """A run folder or released set's path loaded, or a ``DistilledData`` checked (``DistilledData.check``).

    Raises:
        ValueError: ``data`` is neither; InvalidArtifact / FileNotFoundError as ``check`` and ``load``.
    """
    if isinstance(data, DistilledData):
        data.check()
        return data
    if isinstance(data, str | os.PathLike):
        return DistilledData.load(data)
    raise ValueError(
        f"expected a DistilledData or the path of a run folder, got {type(data).__name__}"
    )


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    _replace_atomically(
        Path(path), lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n")
    )


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = (
            tensors[name].detach().contiguous().cpu().reshape(-1)
        )  # 0-dim tensors cannot be viewed as bytes
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Save tensors as safetensors, atomically, with a sha256 of their contents in the metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {**(metadata or {}), "sha256": _digest(tensors)}
    _replace_atomically(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_tensors(path: str | Path, *, with_metadata: bool = False):
    """Load a safetensors file written by ``save_tensors``; refuse it if it is truncated or corrupted.

    Raises:
        InvalidArtifact: the file cannot be parsed or its contents do not match the stored sha256.
    """
    path = Path(path)
    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as err:
        detail = " ".join(str(err).split())  # one line, whatever the parser said
        raise InvalidArtifact(
            f"{path} is unreadable or corrupted ({detail}); delete it or restore a copy"
        ) from err
    expected = metadata.get("sha256")
    if expected is not None and _digest(tensors) != expected:
        raise InvalidArtifact(
            f"{path} is corrupted: its contents do not match the sha256 stored in it"
        )
    return (tensors, metadata) if with_metadata else tensors
