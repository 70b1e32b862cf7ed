"""The shared small types: the schedule moved between devices, a stored set flattened into one training set."""

import torch

from datadistill.types import Steps, flatten_set


def test_flatten_set_keeps_hard_classes_and_soft_targets_apart():
    images = torch.randn(1, 6, 1, 4, 4, requires_grad=True)
    x, y = flatten_set(images, torch.arange(6).view(1, 6))
    assert x.shape == (6, 1, 4, 4) and y.tolist() == list(range(6)) and not x.requires_grad
    _, soft = flatten_set(images, torch.rand(1, 6, 3))
    assert soft.shape == (6, 3)


def test_a_schedule_moves_to_a_device_whole():
    steps = Steps(torch.randn(2, 3, 1, 4, 4), torch.arange(6).view(2, 3), torch.tensor([0.1, 0.2]))
    moved = steps.to(torch.device("meta"))
    assert all(t.device.type == "meta" for t in (moved.images, moved.labels, moved.lrs))
    assert moved.images.shape == steps.images.shape and moved.labels.dtype == torch.int64
    same = steps.to("cpu")
    assert torch.equal(same.images, steps.images) and torch.equal(same.lrs, steps.lrs)
