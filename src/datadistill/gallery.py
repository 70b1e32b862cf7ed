"""Released distilled sets that ship inside the package: list, load, copy out, and publish new ones.

Each entry is a folder ``gallery/<name>/`` with ``distilled.safetensors`` and ``manifest.json`` exactly as a run
folder holds them, so ``datadistill evaluate`` works on it unchanged. The manifest's ``accuracy`` was measured
on the CPU with the replay protocol when the entry was published: a fixed-init entry reproduces it exactly
(its init seed is in the manifest), a random-init entry within its stated std over held-out inits. An
adaptation entry (``pretrained-fixed`` init) carries its pre-trained network in ``gallery/<name>/pretrained/``
(a one-network pool), so it evaluates offline too.

    >>> import datadistill.gallery as gallery
    >>> gallery.list_gallery()                         # doctest: +SKIP
    >>> data = gallery.load_pretrained("mnist-fixed-10")  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from datadistill.artifacts import DISTILLED_FILE, MANIFEST_FILE, DistilledData, check_figure_path

GALLERY_DIR = Path(__file__).parent / "gallery"
PRETRAINED_DIR = "pretrained"  # the pre-trained network of an adaptation entry


def list_gallery() -> list[dict[str, Any]]:
    """One row per released set: name, dataset, model, init, images (stored) and training images (decoded:
    × F² for a ``--formation F`` set), steps × epochs, protocol, accuracy."""
    rows = []
    for folder in sorted(p for p in GALLERY_DIR.glob("*") if (p / MANIFEST_FILE).is_file()):
        m = json.loads((folder / MANIFEST_FILE).read_text())
        shape = m["images_shape"]
        formation = m.get("formation", 1)
        acc = m.get("accuracy", {})
        rows.append(
            {
                "name": folder.name,
                "dataset": m["dataset"],
                "model": m["model"],
                "init": m["init"],
                "images": shape[0] * shape[1],
                "formation": formation,
                "training_images": shape[0] * shape[1] * formation**2,
                "steps": m["steps"],
                "epochs": m["epochs"],
                "soft_labels": m.get("soft_labels", False),
                # how the accuracy was measured: replay, or dataset with the network it trained
                "protocol": acc.get("protocol", "replay"),
                "accuracy_network": (acc.get("recipe") or "").split(":")[0] or m["model"],
                "accuracy_mean": acc.get("accuracy_mean"),
                "accuracy_std": acc.get("accuracy_std"),
                "n_models": acc.get("n_models"),
                "description": m.get("description", ""),
            }
        )
    return rows


def _released_names() -> list[str]:
    return sorted(p.parent.name for p in GALLERY_DIR.glob(f"*/{DISTILLED_FILE}"))


def _did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean a, b?"`` for the ``names`` closest to ``name``, else ``""``."""
    # a prefix ("mnist-10") names what the user meant better than a similar spelling does
    close = [n for n in names if n.startswith(name)] + difflib.get_close_matches(name, names, n=3)
    close = list(dict.fromkeys(close))[:3]
    return f"did you mean {', '.join(close)}?" if close else ""


def _entry(name: str) -> Path:
    names = _released_names()
    if not isinstance(name, str):
        raise ValueError(
            f"a released set is named by text, got {type(name).__name__}; available: {', '.join(names)}"
        )
    if name not in names:  # also refuses "../elsewhere": a name, never a path
        hint = _did_you_mean(name, names)
        folder = " (for a run folder: DistilledData.load(path))" if Path(name).exists() else ""
        raise ValueError(
            f"no released set named {name!r}{f' ({hint})' if hint else ''}{folder}; "
            f"available: {', '.join(names) or 'none'}"
        )
    return GALLERY_DIR / name


def locate(run: str | Path) -> Path:
    """The folder of a set given on the command line: ``run`` itself when it exists or names a path
    (``runs/m10``, ``./m10``), else the released set of that name (``mnist-10-per-class``)."""
    path = Path(run)
    if path.exists() or len(path.parts) > 1:
        return path
    if (GALLERY_DIR / path.name / DISTILLED_FILE).is_file():
        return GALLERY_DIR / path.name
    hint = _did_you_mean(str(run), _released_names())
    raise ValueError(
        f"{run}: no such run folder, and no released set by that name; {hint + ' ' if hint else ''}"
        f"`datadistill gallery` lists the released sets"
    )


def load_pretrained(name: str) -> DistilledData:
    """Load a released distilled set by name (offline: it ships inside the package)."""
    return DistilledData.load(_entry(name))


def pull(name: str, out: str | Path) -> Path:
    """Copy a released set into ``out`` (a run folder that ``evaluate``/``show`` accept)."""
    out = Path(out)
    entry = _entry(name)  # an unknown name is refused before any folder is made
    if (out / DISTILLED_FILE).exists():
        raise FileExistsError(f"{out} already holds a distilled set; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} already holds other files; choose a new or empty --out")
    out.mkdir(parents=True, exist_ok=True)
    for file in (DISTILLED_FILE, MANIFEST_FILE):
        shutil.copy2(entry / file, out / file)
    if (entry / PRETRAINED_DIR).is_dir():
        shutil.copytree(entry / PRETRAINED_DIR, out / PRETRAINED_DIR)
    return out


def publish(
    run: str | Path,
    name: str,
    *,
    models: int | None = None,
    data_dir: str | None = None,
    description: str | None = None,
    gallery_dir: str | Path = GALLERY_DIR,
    accuracy_json: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a run folder on the CPU and copy it into the gallery with that accuracy in its manifest.

    ``description=None`` keeps the description of the entry being replaced (empty for a new entry), so
    republishing a better run of the same setting does not blank the text users see in ``gallery``.

    A set distilled for the dataset protocol is scored with it (fresh ConvNet-3, the field's recipe), which
    takes minutes per network on a CPU: ``accuracy_json`` takes that measurement from an earlier
    ``evaluate --json`` (or ``benchmarks/field_table.py``) of the same set instead of repeating it.

    Returns:
        The manifest written.
    """
    from datadistill.evaluate import evaluate

    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ValueError(
            f"a released set's name is lower-case letters, digits, '.', '_' and '-' (e.g. mnist-10-per-class), "
            f"got {name!r}"
        )
    data = DistilledData.load(run)
    init = data.manifest.get("init")
    if init == "pretrained-random":
        raise ValueError(
            f"{run} was distilled for a pool of pre-trained networks (pretrained-random); the gallery "
            "ships only sets whose init travels with them (fixed, random, pretrained-fixed)"
        )
    folder = Path(gallery_dir) / name
    if description is None:
        old = folder / MANIFEST_FILE
        description = json.loads(old.read_text()).get("description", "") if old.is_file() else ""
    if init == "pretrained-fixed":
        _copy_fixed_network(Path(data.manifest["pretrained"]), folder / PRETRAINED_DIR)
        data.manifest["pretrained"] = str(folder / PRETRAINED_DIR)
    if data.manifest.get("protocol") == "dataset":
        result = _dataset_protocol_result(data, accuracy_json, models, data_dir)
    else:
        result = evaluate(data, models=models, data_dir=data_dir, device="cpu", progress=False)
    manifest = {k: v for k, v in data.manifest.items() if k not in ("run_dir", "data_dir")}
    if init == "pretrained-fixed":
        manifest["pretrained"] = PRETRAINED_DIR  # relative: resolved by DistilledData.load
    # A dataset-protocol entry keeps its per-network accuracies: one network is enough to re-check it.
    dropped = () if result.protocol == "dataset" else ("accuracies", "accuracies_before")
    manifest["accuracy"] = {k: v for k, v in result.to_dict().items() if k not in dropped}
    manifest["accuracy"]["measured_on"] = "cpu"
    manifest["accuracy"]["tensors_sha256"] = data.digest()  # save drops the number if they change
    manifest["description"] = description
    data.manifest = manifest
    data.save(folder, overwrite=True)  # writes the manifest too; publishing again replaces it
    return data.manifest


def _dataset_protocol_result(data, accuracy_json, models, data_dir):
    from datadistill.evaluate import EvalResult, evaluate_as_dataset

    if accuracy_json is None:
        return evaluate_as_dataset(data, models=models, data_dir=data_dir, progress=False)
    measured = json.loads(Path(accuracy_json).read_text())
    if measured.get("protocol") != "dataset" or not measured.get("recipe"):
        raise ValueError(
            f"{accuracy_json} is not a dataset-protocol evaluation (protocol "
            f"{measured.get('protocol')!r}): make it with `datadistill evaluate RUN --protocol dataset "
            "--json FILE`"
        )
    return EvalResult(**measured)


def save_thumbnails(path: str | Path) -> Path:
    """Draw the first images of every released set, one row each, titled with its name and accuracy."""
    from datadistill.viz import save_thumbnail_sheet

    check_figure_path(path, "--thumbnails")
    rows = []
    for r in list_gallery():
        first = load_pretrained(r["name"]).pixels().flatten(0, 1)[:10]
        rows.append((f"{r['name']}: {r['accuracy_mean']:.1f}%", first))
    return save_thumbnail_sheet(rows, path)


def _copy_fixed_network(pool: Path, out: Path) -> None:
    """Write a one-network pool holding the pool's ``pretrained-fixed`` network (``net_0000``)."""
    from datadistill.pools import read_manifest

    manifest = read_manifest(pool)
    first = next(r for r in manifest["networks"] if r.get("split") != "heldout")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pool / first["file"], out / first["file"])
    manifest.update(networks=[first], count=1, heldout=0, source_pool=str(pool))
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
