"""Tests for datadistill.models: every registered model gets the same checks (timm style)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from datadistill.models import (
    INIT_SCHEMES,
    ImageClassifier,
    build_model,
    init_params,
    list_models,
    register_model,
)
from datadistill.models import registry as registry_module

NUM_CLASSES = 10
SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]
# Models whose architecture cannot take 8x8 inputs (tested separately in test_too_small_input).
NEEDS_MORE_THAN_8X8 = {"lenet", "resnet18"}

CASES = [
    pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")
    for name in list_models()
    for shape in SHAPES
    if not (shape[1] == 8 and name in NEEDS_MORE_THAN_8X8)
]


def _batch(shape: tuple[int, int, int], n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))  # [n, C, H, W]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_lists_every_model() -> None:
    assert list_models() == [
        "alexcifarnet",
        "convnet",
        "convnet-32",
        "convnet-64",
        "lenet",
        "linear",
        "mlp",
        "resnet18",
    ]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_forward_shape(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, shape, NUM_CLASSES)
    assert isinstance(model, ImageClassifier)
    assert model.in_shape == shape
    assert model.num_classes == NUM_CLASSES
    out = model(_batch(shape))
    assert out.shape == (4, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_no_buffers(name: str) -> None:
    # Running statistics would be mutated in place across unrolled steps and vmapped inits.
    model = build_model(name, (3, 32, 32), NUM_CLASSES)
    assert list(model.named_buffers()) == []
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in model.modules())


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_backward_gives_finite_grads_for_every_param(
    name: str, shape: tuple[int, int, int]
) -> None:
    model = build_model(name, shape, NUM_CLASSES)
    model.load_state_dict(init_params(model, "xavier", _gen(0)))
    labels = torch.arange(4) % NUM_CLASSES
    nn.functional.cross_entropy(model(_batch(shape)), labels).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_functional_call_matches_loaded_module(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, shape, NUM_CLASSES)
    params = init_params(model, "xavier", _gen(1))
    x = _batch(shape)
    out_functional = functional_call(model, params, (x,))
    model.load_state_dict(params)  # strict: the dict names every entry of the state dict
    torch.testing.assert_close(out_functional, model(x))


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_vmap_over_stacked_params_matches_loop(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, shape, NUM_CLASSES)
    draws = [init_params(model, "default", _gen(seed)) for seed in range(3)]
    stacked = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}  # [3, *param_shape]
    x = _batch(shape)
    out = vmap(lambda p: functional_call(model, p, (x,)))(stacked)  # [3, N, num_classes]
    assert out.shape == (3, 4, NUM_CLASSES)
    for i, params in enumerate(draws):
        torch.testing.assert_close(out[i], functional_call(model, params, (x,)))


@pytest.mark.parametrize("name", list_models())
def test_mismatched_channels_gives_readable_error(name: str) -> None:
    model = build_model(name, (1, 28, 28), NUM_CLASSES)
    x = _batch((3, 28, 28))
    expected = rf"{name} was built for inputs of shape \(1, 28, 28\) but got \(3, 28, 28\).*"
    expected += "channels=1"
    with pytest.raises(ValueError, match=expected):
        model(x)
    params = init_params(model, "xavier", _gen(0))
    with pytest.raises(ValueError, match=expected):
        functional_call(model, params, (x,))
    stacked = {k: torch.stack([v, v]) for k, v in params.items()}
    with pytest.raises(ValueError, match=expected):
        vmap(lambda p: functional_call(model, p, (x,)))(stacked)
    # Inside vmap over the data, x.shape is the per-sample shape: the check still applies.
    with pytest.raises(ValueError, match=expected):
        vmap(model)(x.unsqueeze(1))


@pytest.mark.parametrize("name", list_models())
def test_mismatched_size_and_rank_give_readable_errors(name: str) -> None:
    model = build_model(name, (3, 32, 32), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"built for inputs of shape \(3, 32, 32\).*resize=32"):
        model(_batch((3, 28, 28)))
    with pytest.raises(ValueError, match=r"batch of images \[N, C, H, W\].*unsqueeze"):
        model(torch.zeros(3, 32, 32))


@pytest.mark.parametrize(
    ("name", "shape", "min_hw"), [("lenet", (1, 8, 8), 12), ("convnet", (1, 4, 4), 8)]
)
def test_too_small_input(name: str, shape: tuple[int, int, int], min_hw: int) -> None:
    with pytest.raises(ValueError, match=rf"{name} needs inputs of at least {min_hw}x{min_hw}.*"):
        build_model(name, shape, NUM_CLASSES)
    # The smallest accepted size really works.
    model = build_model(name, (1, min_hw, min_hw), NUM_CLASSES)
    assert model(_batch((1, min_hw, min_hw))).shape == (4, NUM_CLASSES)


def test_alexcifarnet_accepts_small_inputs() -> None:
    # Its pools are padded (as in the reference code), so there is no minimum size.
    model = build_model("alexcifarnet", (3, 2, 2), NUM_CLASSES)
    assert model(_batch((3, 2, 2))).shape == (4, NUM_CLASSES)


def test_reference_feature_sizes() -> None:
    assert build_model("lenet", (1, 28, 28), 10).classifier[0].in_features == 16 * 5 * 5
    assert build_model("alexcifarnet", (3, 32, 32), 10).classifier[0].in_features == 4096
    assert build_model("convnet", (3, 32, 32), 10).classifier.in_features == 128 * 4 * 4
    convnet = build_model("convnet", (1, 28, 28), 10, width=16, depth=2)
    assert convnet.classifier.in_features == 16 * 7 * 7
    assert build_model("mlp", (1, 28, 28), 10, hidden=(32,)).classifier[0].out_features == 32
    one_layer = build_model("mlp", (1, 28, 28), 10, hidden=32)  # an int is one hidden layer
    assert one_layer.hidden == (32,) and one_layer.classifier[0].out_features == 32


def test_unknown_model_name_suggests_close_match() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'lenett'.*'lenet'.*alexcifarnet, convnet"):
        build_model("lenett", (1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"Registered models: alexcifarnet"):
        build_model("resnet152", (1, 28, 28), 10)
    assert isinstance(build_model("LeNet", (1, 28, 28), 10), nn.Module)


def test_an_unknown_option_is_one_line_naming_the_models_options() -> None:
    with pytest.raises(
        ValueError,
        match=r"'convnet' has no option 'widht' \(did you mean 'width'\?\); its options: width, depth",
    ):
        build_model("convnet", (1, 28, 28), 10, widht=8)
    with pytest.raises(ValueError, match=r"'lenet' has no option 'hidden'; its options: none"):
        build_model("lenet", (1, 28, 28), 10, hidden=(32,))


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_MODELS", dict(registry_module._MODELS))

    @register_model("tiny")
    def tiny(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """A tiny model."""
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_classes))

    assert "tiny" in list_models()
    assert registry_module.get_model_spec("tiny").summary == "A tiny model."
    assert build_model("tiny", (1, 2, 2), 3)(torch.zeros(5, 1, 2, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(tiny)


# ----------------------------------------------------------------------------------- init_params


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("name", list_models())
def test_init_params_is_fresh_and_matches_model(name: str, scheme: str) -> None:
    model = build_model(name, (1, 28, 28), NUM_CLASSES)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = init_params(model, scheme, _gen(0))
    assert list(params) == [k for k, _ in model.named_parameters()]
    for k, p in model.named_parameters():
        assert params[k].shape == p.shape and params[k].dtype == p.dtype, k
        assert params[k].device == p.device and params[k].data_ptr() != p.data_ptr(), k
        assert not isinstance(params[k], nn.Parameter)
    for k, v in model.state_dict().items():  # the module is untouched
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_init_params_seeded(scheme: str) -> None:
    model = build_model("lenet", (1, 28, 28), NUM_CLASSES)
    a, b = init_params(model, scheme, _gen(7)), init_params(model, scheme, _gen(7))
    c = init_params(model, scheme, _gen(8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])
    assert not torch.equal(a["classifier.4.weight"], c["classifier.4.weight"])


def test_init_params_float64() -> None:
    model = build_model("linear", (1, 8, 8), 3).double()
    params = init_params(model, "xavier", _gen(0))
    assert all(p.dtype == torch.float64 for p in params.values())


# A big layer, so sample statistics are tight: weight [512, 1024].
_FAN_IN, _FAN_OUT = 1024, 512


def _big_layer_params(scheme: str, gain: float = 1.0) -> dict[str, torch.Tensor]:
    model = build_model("mlp", (1, 32, 32), NUM_CLASSES, hidden=(_FAN_OUT,))
    return init_params(model, scheme, _gen(0), gain=gain)


@pytest.mark.parametrize(
    ("scheme", "expected_std"),
    [
        ("xavier", math.sqrt(2.0 / (_FAN_IN + _FAN_OUT))),
        ("kaiming", math.sqrt(2.0 / _FAN_IN)),
        ("default", math.sqrt(1.0 / _FAN_IN) / math.sqrt(3.0)),  # U(±1/sqrt(fan_in))
    ],
)
def test_init_weight_std(scheme: str, expected_std: float) -> None:
    w = _big_layer_params(scheme)["classifier.0.weight"]
    assert w.mean().abs() < 0.05 * expected_std
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)


def test_xavier_gain_scales_weights() -> None:
    w1 = _big_layer_params("xavier")["classifier.0.weight"]
    w2 = _big_layer_params("xavier", gain=2.0)["classifier.0.weight"]
    torch.testing.assert_close(w2, 2.0 * w1)


def test_orthogonal_rows() -> None:
    w = _big_layer_params("orthogonal")["classifier.0.weight"]  # [512, 1024]
    torch.testing.assert_close(w @ w.T, torch.eye(_FAN_OUT), atol=1e-4, rtol=0)


@pytest.mark.parametrize("scheme", ["xavier", "kaiming", "orthogonal"])
def test_biases_are_zero(scheme: str) -> None:
    params = init_params(build_model("lenet", (1, 28, 28), 10), scheme, _gen(0))
    for k, v in params.items():
        if k.endswith("bias"):
            assert torch.count_nonzero(v) == 0, k


def test_default_bias_range() -> None:
    b = _big_layer_params("default")["classifier.0.bias"]
    bound = 1.0 / math.sqrt(_FAN_IN)
    assert b.abs().max() <= bound and torch.count_nonzero(b) == b.numel()


@pytest.mark.parametrize("name", list_models())
def test_default_scheme_matches_pytorch_construction(name: str) -> None:
    # Oracle: with the global RNG in the same state, "default" draws exactly what the layers'
    # own reset_parameters drew when the model was built.
    torch.manual_seed(123)
    model = build_model(name, (1, 12, 12), NUM_CLASSES)
    torch.manual_seed(123)
    params = init_params(model, "default")
    for k, p in model.named_parameters():
        assert torch.equal(params[k], p.detach()), k


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_norm_layers_start_at_identity(scheme: str) -> None:
    params = init_params(build_model("convnet", (1, 8, 8), 10, width=8), scheme, _gen(0))
    assert torch.equal(params["features.1.weight"], torch.ones(8))
    assert torch.equal(params["features.1.bias"], torch.zeros(8))


def test_unknown_scheme() -> None:
    model = build_model("linear", (1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"unknown init scheme 'xavir'.*xavier, kaiming"):
        init_params(model, "xavir")


def test_unclassifiable_parameter() -> None:
    model = nn.Module()
    model.scale = nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="cannot initialise parameter 'scale'"):
        init_params(model)


def test_a_factory_module_that_does_not_import_is_named_in_one_line(tmp_path, monkeypatch):
    from datadistill.models.user import resolve_model

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_nets.py").write_text("def make(in_shape, num_classes:\n")
    with pytest.raises(ValueError, match=r"broken_nets.py, line 1: .*; fix the file$"):
        resolve_model("broken_nets:make", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="cannot import 'absent_nets'.*PYTHONPATH"):
        resolve_model("absent_nets:make", (1, 8, 8), 10)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((None, (1, 8, 8), 10), {}, "a model is named by text, got NoneType"),
        (("mlp", (1, 8, 8), 2.7), {}, "num_classes must be a whole number >= 1, got 2.7"),
        (("mlp", (1, 8, 8), "ten"), {}, "num_classes must be a whole number"),
        (
            ("mlp", (1, 8, 8.9), 10),
            {},
            r"in_shape must be \(channels, height, width\) with positive whole",
        ),
        (("mlp", None, 10), {}, "in_shape must be"),
        (
            ("mlp", (1, 8, 8), 10),
            {"hidden": "x"},
            "mlp hidden sizes must be positive whole numbers",
        ),
    ],
)
def test_build_model_refuses_what_it_would_truncate_or_crash_on(args, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(*args, **kwargs)
    import numpy as np

    assert build_model("mlp", torch.Size([1, 8, 8]), np.int64(10)).num_classes == 10


# --- your own network (module:factory): pinned by its shapes, imported from where it was, checked once ---

NET_SOURCE = (
    "from torch import nn\n\n"
    "def make_net(in_shape, num_classes):\n"
    "    c, h, w = in_shape\n"
    "    return nn.Sequential(nn.Conv2d(c, {width}, 3, padding=1), nn.ReLU(), nn.Flatten(),\n"
    "                         nn.Linear({width} * h * w, num_classes))\n"
)


def _fresh_interpreter_in(monkeypatch: pytest.MonkeyPatch, cwd, *modules: str) -> None:
    """As a new ``datadistill`` process started in ``cwd``: no user folder on sys.path, no user module."""
    import sys

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(cwd))])
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_a_run_rebuilds_its_own_factory_and_refuses_it_once_edited(tmp_path, monkeypatch, capsys):
    """A run records the shapes of its ``module:factory`` network. ``evaluate RUN`` imports the factory from
    the folder it was distilled from, before a same-named module in the working directory, and refuses the
    factory once a layer's width was edited, naming what changed (it had printed another accuracy)."""
    import json

    import numpy as np

    from datadistill import distill, evaluate
    from datadistill.cli import main

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    x = (
        rng.integers(0, 60, (12, 8, 8)) + 150 * (np.arange(8)[:, None] // 3 == y[:, None, None])
    ) / 255
    np.savez(tmp_path / "d.npz", x_train=x.astype(np.float32), y_train=y)
    home, other = tmp_path / "home", tmp_path / "other"
    for folder, width in ((home, 4), (other, 6)):
        folder.mkdir()
        (folder / "own_nets_a2.py").write_text(NET_SOURCE.format(width=width))
    _fresh_interpreter_in(monkeypatch, home, "own_nets_a2")
    argv = ["distill", "--dataset", "../d.npz", "--model", "own_nets_a2:make_net", "--out", "run"]
    assert (
        main([*argv, "--steps", "1", "--epochs", "1", "--iterations", "2", "--eval-models", "1"])
        == 0
    )
    manifest = json.loads((home / "run" / "manifest.json").read_text())
    assert manifest["model_root"] == str(home)
    assert manifest["model_signature"] == {
        "0.bias": [4],
        "0.weight": [4, 1, 3, 3],
        "3.bias": [3],
        "3.weight": [3, 256],
    }
    recorded = manifest["accuracy"]["accuracy_mean"]
    capsys.readouterr()

    _fresh_interpreter_in(monkeypatch, other, "own_nets_a2")  # other/own_nets_a2.py is 6 wide
    assert main(["evaluate", str(home / "run")]) == 0
    assert f"{recorded:.2f}" in capsys.readouterr().out

    (home / "own_nets_a2.py").write_text(NET_SOURCE.format(width=5))
    _fresh_interpreter_in(monkeypatch, other, "own_nets_a2")
    with pytest.raises(ValueError) as err:
        evaluate(home / "run", progress=False)
    line = str(err.value)
    assert "network own_nets_a2:make_net" in line and "\n" not in line
    assert (
        "0.weight [4, 1, 3, 3] -> [5, 1, 3, 3]" in line and "3.weight [3, 256] -> [3, 320]" in line
    )
    assert line.endswith("restore the factory as it was, or pass the network explicitly "
                         "(evaluate(run, model=...))")  # fmt: skip
    # a manifest without the record (an older run) still rebuilds whatever the factory is now
    del manifest["model_signature"]
    (home / "run" / "manifest.json").write_text(json.dumps(manifest))
    assert evaluate(home / "run", progress=False).n_models == 1
    # a registered model records no signature
    data = distill(dataset=str(tmp_path / "d.npz"), model="mlp", steps=1, epochs=1, iterations=1,
                   eval_every=1, out=str(tmp_path / "mlp"), progress=False)  # fmt: skip
    assert data.manifest["model_signature"] is None


@pytest.mark.parametrize(
    "spec, message",
    [
        # a file path: the module path to write instead, derived from it
        (
            "./own_pkg_c3/good.py:make_net",
            r"is a file path.*write own_pkg_c3\.good:make_net, run from "
            r"the folder holding own_pkg_c3/ \(",
        ),
        ("own_pkg_c3/good:make_net", r"write own_pkg_c3\.good:make_net"),
        # the module is there, one of its imports is not: that import is the problem
        (
            "own_pkg_c3.importerr:make_net",
            r"importing own_pkg_c3\.importerr failed \(.*importerr\.py, "
            r"line 2\): ModuleNotFoundError: No module named "
            r"'not_a_real_module_xyz'; install",
        ),
        (
            "own_pkg_c3.runs_error:make_net",
            r"importing own_pkg_c3\.runs_error failed .*ZeroDivisionError",
        ),
        # a module that is not there: the file Python looked for
        (
            "own_pkg_c3.nope:f",
            r"cannot import 'own_pkg_c3\.nope'.*folder holding own_pkg_c3/nope\.py",
        ),
        # the user's random.py loses to the standard library's: say so, and rename
        (
            "random:make_net",
            r"'random' is taken by an installed or standard module \(.*random\.py\).*"
            r"rename your random\.py",
        ),
        ("own_pkg_c3.good:absent", r"module 'own_pkg_c3\.good' \(.*good\.py\) has no 'absent'$"),
    ],
)
def test_a_factory_that_does_not_import_is_one_line_naming_the_cause(
    spec, message, tmp_path, monkeypatch
) -> None:
    import sys

    from datadistill.models.user import resolve_model

    package = tmp_path / "own_pkg_c3"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(NET_SOURCE.format(width=2))
    (package / "importerr.py").write_text("from torch import nn\nimport not_a_real_module_xyz\n")
    (package / "runs_error.py").write_text("x = 1 / 0\n")
    (tmp_path / "random.py").write_text(NET_SOURCE.format(width=2))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("own_pkg_c3")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ValueError, match=message) as err:
        resolve_model(spec, (1, 8, 8), 3)
    assert "\n" not in str(err.value)


class _Scaled(nn.Module):
    """A linear classifier of ``x · scale`` with ``scale`` a constant buffer (not running statistics)."""

    def __init__(self, in_shape, num_classes, dtype=torch.float32) -> None:
        super().__init__()
        self.register_buffer("scale", torch.full(in_shape, 2.0, dtype=dtype))
        self.fc = nn.Linear(math.prod(in_shape), num_classes)

    def forward(self, x):
        return self.fc((x * self.scale).flatten(1))


def _frozen(in_shape, num_classes):
    net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), 4), nn.Linear(4, num_classes))
    net[1].weight.requires_grad_(False)
    return net


class _NaN(nn.Module):
    def __init__(self, in_shape, num_classes) -> None:
        super().__init__()
        self.fc = nn.Linear(math.prod(in_shape), num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1)).log()  # NaN for every negative logit


@pytest.mark.parametrize(
    "factory, message",
    [
        (
            lambda s, k: nn.Sequential(nn.Flatten(), nn.Linear(math.prod(s), k)).double(),
            r"holds float64 tensors \(1\.weight, 1\.bias\), but the images it trains on are float32: "
            r"leave it in float32",
        ),
        (lambda s, k: _Scaled(s, k, torch.float64), r"holds float64 tensors \(scale\)"),
        (
            lambda s, k: nn.Sequential(
                nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, k)
            ),
            r"keeps running statistics \(1\.running_mean, 1\.running_var, 1\.num_batches_tracked\)"
            r".*track_running_stats=False\)$",
        ),
        (
            _frozen,
            r"has frozen parameters \(1\.weight: requires_grad=False\), but every parameter is drawn "
            r"fresh for each init and trained: keep a fixed tensor as a buffer",
        ),
        (
            _NaN,
            r"returns non-finite logits \(nan, …\) on a batch of standard-normal images, before",
        ),
    ],
)
def test_a_network_the_functional_loop_cannot_train_is_refused_once(factory, message) -> None:
    from datadistill.models.user import resolve_model

    with pytest.raises(ValueError, match=message):
        resolve_model(factory, (1, 8, 8), 3)


def test_constant_buffers_and_batch_statistics_are_not_running_statistics(tmp_path) -> None:
    """A constant buffer is used as it is (it had been refused as BatchNorm); BatchNorm without running
    statistics keeps no buffer at all. Both distil."""
    from datadistill import distill
    from datadistill.models.user import resolve_model

    net, _ = resolve_model(_Scaled, (1, 8, 8), 3)
    x = _batch((1, 8, 8))
    params = init_params(net, "xavier", _gen(0))
    expected = x.flatten(1) * 2.0 @ params["fc.weight"].T + params["fc.bias"]
    torch.testing.assert_close(functional_call(net, params, (x,)), expected)
    stacked = {n: torch.stack([p, p]) for n, p in params.items()}
    batched = vmap(lambda p: functional_call(net, p, (x,)))(stacked)  # [2, 4, 3]
    torch.testing.assert_close(batched[1], expected)
    resolve_model(
        lambda s, k: nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.BatchNorm2d(2, track_running_stats=False),
            nn.Flatten(),
            nn.Linear(72, k),
        ),
        (1, 8, 8),
        3,
    )
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(12, 1, 8, 8, generator=g), torch.arange(12) % 3)
    data = distill(train=train, test=train, model=_Scaled, steps=1, epochs=1, iterations=2,
                   eval_every=2, out=str(tmp_path / "run"), progress=False)  # fmt: skip
    assert data.manifest["model"].endswith("_Scaled")


def _dropout_net(in_shape, num_classes):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(in_shape), 16),
        nn.ReLU(),
        nn.Dropout(0.9),
        nn.Linear(16, num_classes),
    )


def test_a_users_dropout_is_off_in_test_passes_and_each_vmapped_init_draws_its_own_masks(tmp_path):
    """A network with dropout: its test accuracy and the meta-loss on real data were measured with dropout
    on (a different number on every call), and vmapped inits failed with vmap's randomness error."""
    from datadistill import distill
    from datadistill.evaluate import accuracy
    from datadistill.models.base import tested_logits
    from datadistill.models.user import resolve_model

    handed_in = _dropout_net((1, 8, 8), 3).eval()
    net, _ = resolve_model(handed_in, (1, 8, 8), 3)
    assert net.training  # trained from fresh inits: dropout on in training passes
    params = init_params(net, "default", _gen(0))
    x = _batch((1, 8, 8), n=64)
    y = torch.arange(64) % 3
    expected = functional_call(net.eval(), params, (x,))
    net.train()
    torch.testing.assert_close(tested_logits(net, params, x), expected)
    assert net.training  # the mode is restored
    assert accuracy(net, params, x, y) == accuracy(net, params, x, y)
    assert not torch.equal(functional_call(net, params, (x,)), expected)  # training passes drop

    g = torch.Generator().manual_seed(0)
    train = (torch.rand(30, 1, 8, 8, generator=g), torch.arange(30) % 3)
    data = distill(train=train, test=train, model=_dropout_net, protocol="dataset",
                   images_per_class=2, unroll=3, inits_per_iteration=2, vmap_inits=True,
                   iterations=2, eval_every=2, eval_models=1, out=str(tmp_path / "run"),
                   progress=False)  # fmt: skip
    assert torch.isfinite(data.images).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_users_constant_buffer_follows_the_run_to_the_gpu(tmp_path) -> None:
    from datadistill import distill, evaluate

    g = torch.Generator().manual_seed(0)
    train = (torch.rand(12, 1, 8, 8, generator=g), torch.arange(12) % 3)
    data = distill(train=train, test=train, model=_Scaled, steps=1, epochs=1, iterations=2,
                   eval_every=2, device="cuda", out=str(tmp_path / "run"), progress=False)  # fmt: skip
    assert evaluate(data, model=_Scaled, test=train, device="cuda", progress=False).n_models == 1


def test_resume_refuses_a_factory_edited_since_the_checkpoint(tmp_path, monkeypatch, capsys):
    """--resume rebuilt the network from its factory as it is now: an edited one went on distilling the
    images for another network than the run records."""
    import json

    import numpy as np

    from datadistill.cli import main

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    np.savez(tmp_path / "d.npz", x_train=rng.random((12, 8, 8)).astype(np.float32), y_train=y)
    (tmp_path / "own_nets_r5.py").write_text(NET_SOURCE.format(width=4))
    _fresh_interpreter_in(monkeypatch, tmp_path, "own_nets_r5")
    flags = ["--dataset", "d.npz", "--model", "own_nets_r5:make_net", "--steps", "1", "--epochs", "1",
             "--eval-models", "1", "--checkpoint-every", "1", "--out", "run"]  # fmt: skip
    assert main(["distill", *flags, "--iterations", "2"]) == 0
    (tmp_path / "own_nets_r5.py").write_text(NET_SOURCE.format(width=5))
    _fresh_interpreter_in(monkeypatch, tmp_path, "own_nets_r5")
    capsys.readouterr()
    assert main(["distill", "--resume", "--out", "run", "--iterations", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "network own_nets_r5:make_net" in err and "0.weight [4, 1, 3, 3] -> [5, 1, 3, 3]" in err
    assert "restore the factory as it was to resume" in err and "another --out" in err
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["iterations"] == 2
    (tmp_path / "own_nets_r5.py").write_text(NET_SOURCE.format(width=4))  # restored: it goes on
    _fresh_interpreter_in(monkeypatch, tmp_path, "own_nets_r5")
    assert main(["distill", "--resume", "--out", "run", "--iterations", "4"]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["iterations"] == 4
