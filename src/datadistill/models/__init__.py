"""Networks for dataset distillation, built by name from a registry.

All models are plain ``nn.Module`` s with parameters and **no buffers**: no BatchNorm, no
running statistics. The inner loop of dataset distillation (Wang et al. 2018, Alg. 1) trains
the network as a differentiable function of the distilled data, θ_{t+1} = θ_t − η_t ∇ℓ(x̃_t, θ_t),
calling the model through ``torch.func.functional_call(model, params, (x,))``. Updated weights
are tensors in that graph; running buffers would instead be mutated in place on the shared
module, so every unrolled step and every sampled init (also those run side by side under
``torch.func.vmap``) would read and overwrite the same state, outside the graph. Normalisation
that is needed is per-example and stateless (instance norm as ``GroupNorm(C, C)``, LRN).

Example:
    >>> from datadistill.models import build_model, init_params
    >>> model = build_model("lenet", (1, 28, 28), num_classes=10)
    >>> params = init_params(model, "xavier", torch.Generator().manual_seed(0))
    >>> logits = torch.func.functional_call(model, params, (x,))  # doctest: +SKIP
"""

from . import alexcifarnet, convnet, lenet, mlp, resnet  # noqa: F401  (registers the models)
from .alexcifarnet import AlexCifarNet
from .base import ImageClassifier
from .convnet import ConvNet
from .initialization import INIT_SCHEMES, init_params
from .lenet import LeNet
from .mlp import MLP, LinearClassifier
from .registry import ModelSpec, build_model, get_model_spec, list_models, register_model

__all__ = [
    "INIT_SCHEMES",
    "MLP",
    "AlexCifarNet",
    "ConvNet",
    "ImageClassifier",
    "LeNet",
    "LinearClassifier",
    "ModelSpec",
    "build_model",
    "get_model_spec",
    "init_params",
    "list_models",
    "register_model",
]
