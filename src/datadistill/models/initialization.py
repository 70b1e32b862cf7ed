"""Fresh parameter draws θ0 for a model, as a dict that ``functional_call`` can use.

``init_params`` never touches the module: the inner loop samples a new θ0 per unrolled run
(Wang et al. 2018, Sec. 3.2, random initialisation), and the same module object serves every
draw. Randomness comes in as a ``torch.Generator``, never a global reseed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from datadistill.config.settings import INIT_SCHEMES

__all__ = ["INIT_SCHEMES", "init_params"]

# Layers whose affine parameters are a per-channel scale and shift, started at the identity.
_NORM_LAYERS = (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._NormBase)


def init_params(
    model: nn.Module,
    scheme: str = "xavier",
    generator: torch.Generator | None = None,
    *,
    gain: float = 1.0,
) -> dict[str, Tensor]:
    """Draw a fresh set of parameters for ``model`` without modifying it.

    Weights of conv and linear layers (every parameter named ``weight`` with 2+ dims) follow
    ``scheme``:

    - ``"xavier"``: Xavier/Glorot normal, std = gain · sqrt(2 / (fan_in + fan_out)); biases 0.
      The paper's choice (Wang et al. 2018, Sec. 4; reference code ``init=xavier``, gain 1).
    - ``"kaiming"``: He normal for ReLU, std = gain · sqrt(2 / fan_in); biases 0.
    - ``"orthogonal"``: (semi-)orthogonal rows of the weight flattened to 2-D, scaled by gain;
      biases 0.
    - ``"default"``: PyTorch's ``reset_parameters`` distribution, weight ~
      U(±gain · sqrt(1 / fan_in)) (kaiming uniform with a = sqrt(5)), bias ~ U(±1 / sqrt(fan_in)).

    Norm-layer affine parameters are always weight = 1, bias = 0.

    Tensors are sampled on the generator's device (the parameter's device when no generator is
    given) and then moved, so a CPU generator with a fixed seed gives the same θ0 whether the
    model lives on the CPU or a GPU.

    Args:
        model: The module whose parameters to draw; only names, shapes, dtypes and devices are
            read.
        scheme: One of :data:`INIT_SCHEMES`.
        generator: Source of randomness; ``None`` uses the global RNG.
        gain: Multiplies the weight scale of every scheme (1 for the paper).

    Returns:
        ``{name: tensor}`` with the names, order, shapes, dtypes and devices of
        ``model.named_parameters()``. The tensors are new leaves with ``requires_grad=False``;
        call ``.requires_grad_()`` on those you differentiate.

    Raises:
        ValueError: For an unknown scheme, or a parameter this function cannot classify.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> params = init_params(model, "xavier", g)  # doctest: +SKIP
        >>> logits = torch.func.functional_call(model, params, (x,))  # doctest: +SKIP
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    drawn: dict[str, Tensor] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            drawn[name] = _draw(module, param_name, param, name, scheme, generator, gain)
    # named_parameters() drops tied duplicates; follow it for names and order.
    return {name: drawn[name] for name, _ in model.named_parameters()}


def _draw(
    module: nn.Module,
    param_name: str,
    param: Tensor,
    full_name: str,
    scheme: str,
    generator: torch.Generator | None,
    gain: float,
) -> Tensor:
    """One fresh tensor shaped like ``param`` (see :func:`init_params` for the rules)."""
    device = generator.device if generator is not None else param.device
    out = torch.empty(param.shape, dtype=param.dtype, device=device)
    weight = getattr(module, "weight", None)

    if isinstance(module, _NORM_LAYERS):
        if param_name == "weight":
            return torch.ones_like(param)
        if param_name == "bias":
            return torch.zeros_like(param)
    elif param_name == "weight" and param.dim() >= 2:
        if scheme == "xavier":
            nn.init.xavier_normal_(out, gain=gain, generator=generator)
        elif scheme == "kaiming":
            nn.init.kaiming_normal_(out, nonlinearity="relu", generator=generator).mul_(gain)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(out, gain=gain, generator=generator)
        else:  # default: what nn.Linear / nn.Conv2d.reset_parameters do
            nn.init.kaiming_uniform_(out, a=math.sqrt(5), generator=generator).mul_(gain)
        return out.to(param.device)
    elif param_name == "bias" and isinstance(weight, Tensor) and weight.dim() >= 2:
        if scheme != "default":
            return torch.zeros_like(param)
        fan_in = weight.shape[1] * math.prod(weight.shape[2:])
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(out, -bound, bound, generator=generator)
        return out.to(param.device)

    raise ValueError(
        f"init_params cannot initialise parameter {full_name!r} of {type(module).__name__} "
        f"(shape {tuple(param.shape)}): it handles conv/linear weights and biases and norm-layer "
        "affine parameters"
    )
