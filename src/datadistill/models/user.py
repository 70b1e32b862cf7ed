"""Your own network: a factory ``module:function`` by name, a factory callable, or an ``nn.Module``.

A factory is called as ``factory(in_shape, num_classes)`` with ``in_shape = (C, H, W)`` and returns an
``nn.Module`` mapping ``[N, C, H, W]`` images to ``[N, num_classes]`` logits. The network is driven like the
built-in ones, through ``torch.func.functional_call(model, params, (x,))`` with parameter dicts drawn by
:func:`~datadistill.models.init_params`, so every parameter is drawn fresh for each init and trained.
Refused, each with one line saying what to do instead:

- running statistics (BatchNorm's ``running_mean`` / ``running_var``), which every unrolled step and every
  sampled init would overwrite in place, outside the differentiable graph: use GroupNorm / LayerNorm /
  InstanceNorm without running stats, or ``BatchNorm2d(C, track_running_stats=False)`` (which normalises
  with the statistics of each batch and keeps no state). Other buffers are constants and are fine;
- frozen parameters (``requires_grad=False``), which would be drawn and trained like the others: keep a
  fixed tensor as a buffer (``register_buffer``);
- parameters in another dtype than float32 (``.double()``), the dtype of the images;
- a forward pass that fails, does not return ``[N, num_classes]`` logits, or returns NaN / inf on a batch
  of standard-normal images (the scale of normalised data).

What a run records, so that ``datadistill evaluate`` can rebuild the network: a registered name, or the
factory's ``module:function`` spec (a module importable the way Python imports it; the ``datadistill``
command puts the working directory on ``sys.path`` as ``python -m`` does). A network passed as an instance,
or a factory defined in ``__main__`` or inside a function, is recorded as ``python:<ClassName>`` and can only
be evaluated from Python, by passing the same ``model=`` again. A factory's run also records the folder it
was imported from (``factory_root``; ``make_importable`` puts it first on ``sys.path`` again) and the
network's parameter and buffer shapes (``network_signature``), so an edited factory is refused
(``check_signature``) rather than silently evaluated as another network.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datadistill.models.registry import build_model, list_models

PYTHON_PREFIX = (
    "python:"  # a recorded model that only exists in the Python session that made the run
)
ModelLike = str | nn.Module | Callable[..., nn.Module]


def is_factory_spec(model: Any) -> bool:
    """True for a ``package.module:factory`` string."""
    return isinstance(model, str) and ":" in model and not model.startswith(PYTHON_PREFIX)


def resolve_model(
    model: ModelLike, in_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Module, str]:
    """Build the network a run uses, and the spec string to record for it.

    Args:
        model: a registered name (``"lenet"``), a factory spec (``"my_nets:make_net"``), a factory
            callable ``factory(in_shape, num_classes) -> nn.Module``, or an ``nn.Module`` instance.
        in_shape: ``(C, H, W)`` of the images.
        num_classes: logits the network must output.

    Returns:
        ``(module, spec)``; spec is the registered name, ``module:function``, or ``python:<Name>`` when the
        network cannot be rebuilt outside this Python session.

    Raises:
        ValueError: unknown name, a factory that cannot be imported or fails, a network with buffers, or
            one whose output is not ``[N, num_classes]``.
    """
    if isinstance(model, str) and model.startswith(PYTHON_PREFIX):
        raise ValueError(
            f"this run's network ({model[len(PYTHON_PREFIX) :]}) was passed as a Python object and "
            "cannot be rebuilt from the run folder: evaluate it in Python with "
            "evaluate(run, model=<the same network or factory>), or distil with --model module:factory"
        )
    if isinstance(model, str) and not is_factory_spec(model):
        return build_model(model, in_shape, num_classes), model
    if isinstance(model, str):
        factory, spec = _import_factory(model), model
    elif isinstance(model, nn.Module):
        net = model
        spec = PYTHON_PREFIX + type(model).__name__
        check_functional(net, in_shape, num_classes, spec)
        return net.train(), spec
    elif callable(model):
        factory, spec = model, _spec_of(model)
    else:
        raise ValueError(
            f"model must be a registered name ({', '.join(list_models())}), 'module:factory', a "
            f"factory callable or an nn.Module; got a {type(model).__name__}"
        )
    try:
        net = factory(tuple(in_shape), num_classes)
    except Exception as err:  # noqa: BLE001 - the user's code may raise anything; say whose it was
        raise ValueError(
            f"model factory {spec} failed when called as factory({tuple(in_shape)}, {num_classes}): "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"model factory {spec} returned a {type(net).__name__}; it must return an nn.Module"
        )
    check_functional(net, in_shape, num_classes, spec)
    return net.train(), spec  # trained from fresh inits: in training mode whatever it was handed in


def check_functional(net: nn.Module, in_shape, num_classes: int, spec: str) -> None:
    """Refuse a network the functional inner loop cannot drive correctly (running statistics, frozen or
    non-float32 parameters, a wrong or non-finite output)."""
    stats = [n for n, _ in net.named_buffers() if n.rpartition(".")[2] in _RUNNING_STATS]
    if stats:
        raise ValueError(
            f"network {spec} keeps running statistics ({_some(stats)}), e.g. BatchNorm's, which every "
            "network trained from it (each unrolled step, each init, each evaluated network) would "
            "overwrite in place: use GroupNorm/LayerNorm, or BatchNorm2d(C, track_running_stats=False)"
        )
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    if frozen:
        raise ValueError(
            f"network {spec} has frozen parameters ({_some(frozen)}: requires_grad=False), but every "
            "parameter is drawn fresh for each init and trained: keep a fixed tensor as a buffer "
            "(self.register_buffer(name, tensor)) instead of a Parameter"
        )
    tensors = [*net.named_parameters(), *net.named_buffers()]
    other = [(n, t.dtype) for n, t in tensors if t.is_floating_point() and t.dtype != torch.float32]
    if other:
        raise ValueError(
            f"network {spec} holds {str(other[0][1]).removeprefix('torch.')} tensors "
            f"({_some([n for n, _ in other])}), but the images it trains on are float32: leave it in "
            "float32 (drop .double() / .half() / .to(dtype) from the factory)"
        )
    if not any(True for _ in net.parameters()):
        raise ValueError(f"network {spec} has no parameters to train")
    built_for = getattr(net, "in_shape", None)  # one of ours knows its input shape: say it plainly
    if built_for is not None and tuple(built_for) != tuple(in_shape):
        raise ValueError(
            f"network {spec} was built for inputs of shape {tuple(built_for)}, but the images are "
            f"{tuple(in_shape)}: build it with in_shape={tuple(in_shape)}"
        )
    param = next(net.parameters())
    # standard-normal images, the scale of normalised data (all-zero ones make x / x.norm() NaN)
    probe = torch.randn(2, *in_shape, generator=torch.Generator().manual_seed(0)).to(param.device)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:  # noqa: BLE001 - the user's forward may raise anything
        raise ValueError(
            f"network {spec} fails on a batch of shape {tuple(probe.shape)}: {type(err).__name__}: "
            f"{err}; build it for in_shape={tuple(in_shape)} (when distilling, --resize can fit the data "
            "to it instead)"
        ) from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"network {spec} maps a batch {tuple(probe.shape)} to {got}; it must return logits "
            f"[N, {num_classes}] (one per class)"
        )
    bad = out[~torch.isfinite(out)]
    if len(bad):
        raise ValueError(
            f"network {spec} returns non-finite logits ({bad[0].item()}, …) on a batch of "
            "standard-normal images, before any training: fix its forward pass (e.g. a division by "
            "zero, a log of a negative, an overflow)"
        )


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm's state buffers


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def network_signature(net: nn.Module) -> dict[str, list[int]]:
    """The shape of every parameter and buffer of ``net``, by name (sorted): what a run records of a
    ``module:factory`` network, so that a factory edited since (a layer added, a width changed) is noticed."""
    tensors = [*net.named_parameters(), *net.named_buffers()]
    return {name: list(t.shape) for name, t in sorted(tensors, key=lambda nt: nt[0])}


def check_signature(
    net: nn.Module,
    spec: str,
    recorded: dict[str, list[int]] | None,
    fix: str = "restore the factory as it was, or pass the network explicitly (evaluate(run, model=...))",
) -> None:
    """Refuse a network rebuilt from ``spec`` whose :func:`network_signature` is not the ``recorded`` one
    (None: not recorded, as by older runs and registered models); ``fix`` ends the message."""
    if recorded is None:
        return
    if not isinstance(recorded, dict) or not all(isinstance(v, list) for v in recorded.values()):
        raise ValueError(
            f"the run's manifest.json has a model_signature that is not {{name: shape}} "
            f"({type(recorded).__name__}): restore the file, or remove the key to skip the check"
        )
    refuse_changed_signature(spec, recorded, network_signature(net), fix)


def refuse_changed_signature(
    spec: str, recorded: dict[str, list[int]], now: dict[str, list[int]], fix: str
) -> None:
    """One line naming the first changed shapes of network ``spec`` when its signature ``now`` is not
    the ``recorded`` one; ``fix`` ends it."""
    changed = [
        f"{name} {recorded.get(name, 'absent')} -> {now.get(name, 'absent')}"
        for name in sorted(set(recorded) | set(now))
        if recorded.get(name) != now.get(name)
    ]
    if changed:
        file = getattr(sys.modules.get(spec.partition(":")[0]), "__file__", None)
        where = f" (in {file})" if file else ""
        raise ValueError(
            f"network {spec}{where} is not the one this run was distilled with: "
            f"{'; '.join(changed[:3])}{f'; … ({len(changed)} in all)' if len(changed) > 3 else ''}: "
            f"{fix}"
        )


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"--model {spec!r}: write it as package.module:factory, e.g. my_nets:make_net"
        )
    if module_name.startswith(".") or module_name.endswith(".py") or "/" in module_name:
        raise ValueError(_module_path_for(spec))
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as err:  # the user's file, not ours: say where, without our traceback
        raise ValueError(
            f"--model {spec}: {err.filename}, line {err.lineno}: {err.msg}; fix the file"
        ) from None
    except Exception as err:  # noqa: BLE001 - the user's module may raise anything as it runs
        missing = getattr(err, "name", None) if isinstance(err, ModuleNotFoundError) else None
        if missing is not None and f"{module_name}.".startswith(f"{missing}."):
            file = module_name.replace(".", "/") + ".py"
            raise ValueError(
                f"--model {spec}: cannot import {module_name!r} (no module named {missing!r}); run "
                f"from the folder holding {file}, or add that folder to PYTHONPATH"
            ) from None
        raise ValueError(_import_failed(spec, module_name, err)) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(_missing(spec, module, attr))
    if not callable(target):
        raise ValueError(f"--model {spec}: {attr!r} is a {type(target).__name__}, not a factory")
    return target


def _module_path_for(spec: str) -> str:
    """The message for a file path given where a module path goes: the module path to write instead."""
    name, _, attr = spec.partition(":")
    path = Path(name.removesuffix(".py"))
    # outside the working directory: from the file's package root, found by its __init__.py files
    if path.is_absolute() or ".." in path.parts:
        path = path.resolve()
        folder, parts = path.parent, [path.name]
        while (folder / "__init__.py").is_file():
            folder, parts = folder.parent, [folder.name, *parts]
    else:
        folder, parts = Path.cwd(), [p for p in path.parts if p != "."]
    parts = [q for p in parts for q in p.split(".") if q]
    holding = parts[0] + ("/" if len(parts) > 1 else ".py")
    return (
        f"--model {spec!r} is a file path, but --model takes a module path: write "
        f"{'.'.join(parts)}:{attr}, run from the folder holding {holding} ({folder})"
    )


def _import_failed(spec: str, module_name: str, err: Exception) -> str:
    """The message for an error raised while the user's module ran, e.g. one of its own imports."""
    ours = {__file__, importlib.__file__}
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename not in ours]
    user = next((f for f in frames if not f.filename.startswith("<frozen")), None)
    where = f" ({user.filename}, line {user.lineno})" if user is not None else ""
    head = f"--model {spec}: importing {module_name} failed{where}: {type(err).__name__}: {err}"
    if isinstance(err, ModuleNotFoundError):
        return f"{head}; install {err.name!r}, or fix that import"
    return f"{head}; fix the file"


def _missing(spec: str, module: Any, attr: str) -> str:
    """The message for a factory name the imported module lacks, naming the file Python imported: an
    installed or standard module of the same name is imported before the user's file."""
    name, file = module.__name__, getattr(module, "__file__", None)
    if file is None or any(Path(file).resolve().is_relative_to(d) for d in _installed_dirs()):
        top = name.split(".")[0]
        return (
            f"--model {spec}: the name {top!r} is taken by an installed or standard module "
            f"({file or 'built in'}), which Python imports instead of your file: rename your "
            f"{top}.py (e.g. my_{top}.py) and write my_{top}:{attr}"
        )
    return f"--model {spec}: module {name!r} ({file}) has no {attr!r}"


def _installed_dirs() -> set[Path]:
    """Where the standard library and installed packages live."""
    paths = sysconfig.get_paths()
    return {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}


def _spec_of(factory: Callable[..., Any]) -> str:
    """``module:qualname`` when the factory can be imported again by that name, else ``python:<name>``."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None) or type(factory).__name__
    if module and module != "__main__" and "<" not in qualname:
        try:
            if _import_factory(f"{module}:{qualname}") is factory:
                return f"{module}:{qualname}"
        except ValueError:
            pass
    return PYTHON_PREFIX + qualname


def default_model_for(image_shape: tuple[int, int, int]) -> str:
    """The default network for a user's data set: LeNet from 12x12 pixels up, else the MLP."""
    return "lenet" if min(image_shape[1:]) >= 12 else "mlp"


def factory_root(spec: str) -> str | None:
    """The ``sys.path`` folder the factory of ``spec`` was imported from (None if not a factory spec).

    A run records it so that ``evaluate`` finds ``my_nets.py`` from any working directory.
    """
    if not is_factory_spec(spec):
        return None
    module_name = spec.partition(":")[0]
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    path = Path(file).resolve()
    if path.name == "__init__.py":
        path = path.parent
    return str(path.parents[len(module_name.split(".")) - 1])


def make_importable(spec: str, root: str | None) -> None:
    """Put ``root`` first on ``sys.path`` when it holds the factory module of ``spec``, so a run's
    recorded network is imported from where it was, from any working directory, and a module of the
    same name in the working directory does not take its place."""
    if not is_factory_spec(spec) or root is None:
        return
    top = spec.partition(":")[0].split(".")[0]
    if not ((Path(root) / f"{top}.py").is_file() or (Path(root) / top).is_dir()):
        return  # moved or deleted: importing it by name says what is missing
    if Path(root).resolve() in _installed_dirs():
        return  # an installed package: on sys.path already, where it must not shadow the standard library
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    importlib.invalidate_caches()
