"""Presets: YAML files of settings, found by name or path, and the resolved settings written beside a run."""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from datadistill.config.settings import check_kinds

PRESET_DIR = Path(__file__).parent.parent / "configs"


def list_presets() -> list[str]:
    """Names of the YAML presets that ship with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def find_preset(name_or_path: str | Path) -> Path:
    """A preset by file path, or by name among the shipped presets."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = PRESET_DIR / f"{path.stem}.yaml"
    if shipped.is_file() and path.suffix in ("", ".yaml") and len(path.parts) == 1:
        return shipped
    close = difflib.get_close_matches(path.stem, list_presets(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise FileNotFoundError(
        f"config {name_or_path!s} not found: give a YAML file or one of the presets "
        f"{', '.join(list_presets())}{hint}"
    )


def load_config(cls, preset: str | Path | None = None, overrides: dict[str, Any] | None = None):
    """Build ``cls`` (a config dataclass) from a YAML preset, then ``overrides`` (None values are skipped).

    ``cls.PRESET_DEPENDENTS`` (optional, ``{setting: (dependent, ...)}``): when an override changes a setting's
    preset value, the preset's values of its dependents are dropped unless overridden too.

    Raises:
        ValueError: a key of the preset is not a setting of ``cls`` (the message names the key and file).
    """
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if preset is not None:
        path = find_preset(preset)
        loaded = read_yaml(path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a mapping of setting: value")
        for key, value in loaded.items():
            norm = str(key).replace("-", "_")
            if norm not in names:
                close = difflib.get_close_matches(norm, sorted(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{path}: unknown setting {key!r}{hint}")
            values[norm] = tuple(value) if isinstance(value, list) else value
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    # A preset's settings that only mean something under one value of another setting (the step schedule's
    # decay) give way when that setting is overridden, or a preset could never be switched to another value.
    for key, dependents in getattr(cls, "PRESET_DEPENDENTS", {}).items():
        if key in given and given[key] != values.get(key, given[key]):
            for dependent in dependents:
                if dependent not in given:
                    values.pop(dependent, None)
    values.update(given)
    check_kinds(cls, values)
    cfg = cls(**values)
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def read_yaml(path: Path) -> Any:
    """The YAML in ``path``; a file that is not YAML text raises one line naming it and where it breaks."""
    try:
        return yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is not a text file; give a YAML config (setting: value lines)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "unreadable"
        raise ValueError(
            f"{path} is not valid YAML ({problem}{where}); fix or replace it"
        ) from None


def parse_assignments(cls, items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (e.g. a benchmark's ``--set``) as overrides of ``cls``'s settings.

    A setting whose default is a string takes VALUE as it is; any other takes it as YAML (``50``, ``0.01``,
    ``1e-3``, ``true``, ``[0.9, 0.999]``, ``null``). Dashes in KEY read as underscores.

    Raises:
        ValueError: an item without ``=``, or a KEY that is not a setting of ``cls`` (one line, with the
            closest setting's name).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE (e.g. iterations=500), got {item!r}")
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"--set {item!r}: {key!r} is not a {cls.__name__} setting{hint}")
        default = fields[key].default
        if isinstance(default, str):
            overrides[key] = value
            continue
        try:  # JSON first: YAML 1.1 reads 1e-3 as a string
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = yaml.safe_load(value)
        overrides[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return overrides


def to_dict(cfg) -> dict[str, Any]:
    """The config as plain YAML/JSON-able values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg, path: Path, notes: list[str] | None = None) -> None:
    """Write the resolved settings as YAML; ``notes`` become ``#`` comment lines above them."""
    from datadistill.artifacts import _replace_atomically

    text = "".join(f"# {line}\n" for line in notes or ()) + yaml.safe_dump(
        to_dict(cfg), sort_keys=False
    )
    _replace_atomically(Path(path), lambda tmp: Path(tmp).write_text(text))
