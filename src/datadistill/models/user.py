"""Your own network: a factory ``module:function`` by name, a factory callable, or an ``nn.Module``.

A factory is called as ``factory(in_shape, num_classes)`` with ``in_shape = (C, H, W)`` and returns an
``nn.Module`` mapping ``[N, C, H, W]`` images to ``[N, num_classes]`` logits. The network is driven like the
built-in ones, through ``torch.func.functional_call(model, params, (x,))`` with parameter dicts drawn by
:func:`~datadistill.models.init_params`, so it must hold **parameters only**: BatchNorm's running statistics
(or any other buffer) would be overwritten in place by every unrolled step and every sampled init, outside
the differentiable graph. Such a network is refused with a message saying what to use instead: GroupNorm /
LayerNorm / InstanceNorm without running stats, or ``BatchNorm2d(C, track_running_stats=False)`` (which
normalises with the statistics of each batch and keeps no state).

What a run records, so that ``datadistill evaluate`` can rebuild the network: a registered name, or the
factory's ``module:function`` spec (a module importable the way Python imports it; the ``datadistill``
command puts the working directory on ``sys.path`` as ``python -m`` does). A network passed as an instance,
or a factory defined in ``__main__`` or inside a function, is recorded as ``python:<ClassName>`` and can only
be evaluated from Python, by passing the same ``model=`` again.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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
        return net, spec
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
    return net, spec


def check_functional(net: nn.Module, in_shape, num_classes: int, spec: str) -> None:
    """Refuse a network the functional inner loop cannot drive correctly (buffers, wrong output)."""
    buffers = [name for name, _ in net.named_buffers()]
    if buffers:
        raise ValueError(
            f"network {spec} has buffers ({', '.join(buffers[:3])}{', …' if len(buffers) > 3 else ''}), "
            "e.g. BatchNorm running statistics, which the unrolled training would overwrite in place: "
            "use GroupNorm/LayerNorm, or BatchNorm2d(C, track_running_stats=False)"
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
    probe = torch.zeros(2, *in_shape, dtype=param.dtype, device=param.device)
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


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"--model {spec!r}: write it as package.module:factory, e.g. my_nets:make_net"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"--model {spec}: cannot import {module_name!r} ({err}); run from the folder holding "
            f"{module_name.split('.')[0]}.py or add its folder to PYTHONPATH"
        ) from err
    except SyntaxError as err:  # the user's file, not ours: say where, without our traceback
        raise ValueError(
            f"--model {spec}: {err.filename}, line {err.lineno}: {err.msg}; fix the file"
        ) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"--model {spec}: module {module_name!r} has no {attr!r}")
    if not callable(target):
        raise ValueError(f"--model {spec}: {attr!r} is a {type(target).__name__}, not a factory")
    return target


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
    """Put ``root`` on ``sys.path`` (at the end) when the factory module of ``spec`` cannot be imported
    otherwise, so a run's recorded network is found from any working directory."""
    if not is_factory_spec(spec) or root is None or not Path(root).is_dir():
        return
    if (
        importlib.util.find_spec(spec.partition(":")[0].split(".")[0]) is None
        and root not in sys.path
    ):
        sys.path.append(root)
