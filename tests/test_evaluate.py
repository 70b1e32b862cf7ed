"""evaluate.py: replay (the paper's protocol) of a distilled set on a network, and EvalResult."""

from __future__ import annotations

import os

import pytest
import torch

import datadistill
from datadistill.artifacts import DistilledData
from datadistill.evaluate import EvalResult, accuracy, replay
from datadistill.models import build_model, init_params
from datadistill.setting import setting_from_manifest
from datadistill.unroll import Steps, unroll


def _tiny(lrs: torch.Tensor) -> DistilledData:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 10, 1, 8, 8, generator=g)
    labels = torch.arange(10).repeat(2, 1)
    return DistilledData(images, labels, lrs, {"label_targets": None})


def test_replay_is_unroll_over_all_epochs_and_detached():
    model = build_model("mlp", (1, 8, 8), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(1))
    data = _tiny(torch.tensor([0.1, 0.2, 0.05, 0.3]))  # 2 steps x 2 epochs
    final = replay(data, model, params)
    expected = unroll(model, params, Steps(data.images, data.labels, data.lrs), create_graph=False)[
        -1
    ]
    assert all(torch.allclose(final[k], expected[k]) for k in final)
    assert all(not p.requires_grad for p in final.values())
    assert any(not torch.equal(final[k], params[k]) for k in final)  # it did train


def test_replay_with_zero_step_sizes_leaves_the_network_unchanged():
    model = build_model("mlp", (1, 8, 8), 10)
    params = init_params(model, "xavier", torch.Generator().manual_seed(1))
    final = replay(_tiny(torch.zeros(4)), model, params)
    assert all(torch.equal(final[k], params[k].detach()) for k in final)


def test_eval_result_reports_its_protocol_and_numbers():
    result = EvalResult(90.0, 1.5, 2, 10.0, 0.5, [88.5, 91.5], [9.5, 10.5], init="random")
    d = result.to_dict()
    assert d["protocol"] == "replay" and d["accuracy_mean"] == 90.0 and d["n_models"] == 2
    assert "90" in result.table()


@pytest.mark.slow
def test_replay_of_a_gallery_set_reproduces_its_manifest_accuracy():
    if not os.environ.get("DATADISTILL_DATA"):
        pytest.skip("needs real MNIST: set $DATADISTILL_DATA")
    data = datadistill.load_pretrained("mnist-fixed-10")
    setting = setting_from_manifest(data.manifest)
    test = setting.load("test")
    theta0 = next(setting.inits.evaluation_inits(1))
    trained = replay(data, setting.model, theta0)
    expected = data.manifest["accuracy"]["accuracy_mean"]
    assert accuracy(setting.model, trained, test.images, test.labels) == pytest.approx(
        expected, abs=1e-9
    )
    assert accuracy(setting.model, theta0, test.images, test.labels) == pytest.approx(
        data.manifest["accuracy"]["accuracy_before_mean"], abs=1e-9
    )
