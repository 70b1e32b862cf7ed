"""The shared small types: a stored set flattened into one training set."""

import torch

from datadistill.types import flatten_set


def test_flatten_set_keeps_hard_classes_and_soft_targets_apart():
    images = torch.randn(1, 6, 1, 4, 4, requires_grad=True)
    x, y = flatten_set(images, torch.arange(6).view(1, 6))
    assert x.shape == (6, 1, 4, 4) and y.tolist() == list(range(6)) and not x.requires_grad
    _, soft = flatten_set(images, torch.rand(1, 6, 3))
    assert soft.shape == (6, 3)
