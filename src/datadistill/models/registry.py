"""Model registry: ``@register_model`` fills a dict of :class:`ModelSpec` by name (timm style).

The registry is what the CLI, configs and tests see: ``list_models()`` answers "what is there",
``build_model(name, in_shape, num_classes)`` constructs one, and ``tests/test_models.py`` is
parametrised over ``list_models()`` so every registered model gets the same checks.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ModelSpec", "build_model", "list_models", "register_model"]

# A constructor takes (in_shape, num_classes, **kwargs) and returns the module.
ModelFn = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture."""

    name: str  # registry key, lower case, as typed on the command line
    constructor: ModelFn  # (in_shape: (C, H, W), num_classes: int, **kwargs) -> nn.Module
    summary: str  # one line for listings: first line of the constructor's docstring


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str) -> Callable[[ModelFn], ModelFn]:
    """Register a model constructor (a class or function) under ``name``.

    Args:
        name: Registry key; stored lower case.

    Returns:
        A decorator that records the constructor and returns it unchanged.

    Example:
        >>> @register_model("tiny")  # doctest: +SKIP
        ... class Tiny(ImageClassifier): ...
    """
    key = name.lower()

    def decorator(fn: ModelFn) -> ModelFn:
        if key in _MODELS:
            # Two modules claiming one name is a programming error, and silently letting the
            # second win would make `build_model` depend on import order.
            raise ValueError(f"model {key!r} is already registered ({_MODELS[key].constructor})")
        summary = (fn.__doc__ or "").strip().split("\n", 1)[0]
        _MODELS[key] = ModelSpec(name=key, constructor=fn, summary=summary)
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name`` (case-insensitive).

    Raises:
        ValueError: If no model has that name; the message lists the registered names and the
            closest matches.
    """
    if not isinstance(name, str):
        raise ValueError(
            f"a model is named by text, got {type(name).__name__}; registered models: {', '.join(list_models())}"
        )
    key = name.lower()
    if key not in _MODELS:
        close = difflib.get_close_matches(key, _MODELS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}."
        )
    return _MODELS[key]


def build_model(
    name: str, in_shape: tuple[int, int, int], num_classes: int, **kwargs: object
) -> nn.Module:
    """Build the registered model ``name`` for inputs of shape ``in_shape``.

    Args:
        name: A name from :func:`list_models` (case-insensitive).
        in_shape: Per-example input shape ``(C, H, W)``.
        num_classes: Number of output logits.
        **kwargs: Architecture options, e.g. ``width``/``depth`` for ``convnet``, ``hidden`` for
            ``mlp``.

    Returns:
        The module, with PyTorch's default initialisation; use :func:`init_params` for the
        paper's Xavier initialisation or a seeded draw.

    Raises:
        ValueError: For an unknown name or option, or an input too small for the architecture.

    Example:
        >>> model = build_model("lenet", (1, 28, 28), 10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """
    spec = get_model_spec(name)
    params = list(inspect.signature(spec.constructor).parameters.values())[2:]
    options = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    for key in kwargs:
        # One line naming the model's options, not a TypeError from its __init__.
        if key not in options and not takes_any:
            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(options) or "none"
            raise ValueError(
                f"model {spec.name!r} has no option {key!r}{hint}; its options: {allowed}"
            )
    return spec.constructor(in_shape, num_classes, **kwargs)
