"""Real-image helpers of the baselines: image sets in class order, per-class k-means, 1-NN accuracy."""

import pytest
import torch

from datadistill.data import load_dataset
from datadistill.experiments import baselines as bl
from datadistill.experiments.real_images import (
    arrange,
    average_real,
    kmeans_centroids,
    nearest_neighbour_accuracy,
    random_real,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def test_arrange_lays_out_steps_in_class_order():
    # Image (class c, index i) is a constant tensor 100·c + i, so its place in the schedule is readable.
    per_class = (
        100 * torch.arange(3)[:, None] + torch.arange(4)[None, :]
    ).float()  # [3 classes, 4]
    per_class = per_class[:, :, None, None, None].expand(3, 4, 1, 2, 2)
    images, labels = arrange(per_class, steps=2, images_per_class=2)
    assert images.shape == (2, 6, 1, 2, 2) and labels.shape == (2, 6)
    assert labels.tolist() == [[0, 0, 1, 1, 2, 2]] * 2  # class of column c is c // K
    # Step s, column c holds image s·K + (c mod K) of class c // K: every image used exactly once.
    assert images[:, :, 0, 0, 0].tolist() == [
        [0, 1, 100, 101, 200, 201],
        [2, 3, 102, 103, 202, 203],
    ]


@pytest.mark.parametrize("name", ["random-real", "kmeans", "average-real"])
def test_image_baselines_have_the_budget_shape_and_right_classes(digits, name):
    train, _ = digits
    fit, _ = bl.split_train(len(train), 300, seed=0)
    x, y = train.images[fit], train.labels[fit]
    if name == "random-real":
        per_class = random_real(x, y, 10, 3, 2, torch.Generator().manual_seed(0))
    elif name == "kmeans":
        per_class = kmeans_centroids(x, y, 10, 3, 2, seed=0)
    else:
        per_class = average_real(x, y, 10, 3, 2)
    assert per_class.shape == (10, 6, 1, 8, 8)
    assert torch.isfinite(per_class).all()
    images, labels = arrange(per_class, 3, 2)
    assert images.shape == (3, 20, 1, 8, 8)
    assert torch.equal(labels, torch.arange(10).repeat_interleave(2).repeat(3, 1))
    if name == "random-real":
        # Real images of the labelled class, distinct, from the fit part only.
        flat = x.reshape(len(x), -1)
        for c in range(10):
            for img in per_class[c]:
                match = (flat == img.reshape(1, -1)).all(dim=1).nonzero().squeeze(1)
                assert len(match) >= 1 and bool((y[match] == c).all())
        assert len(torch.unique(per_class.reshape(60, -1), dim=0)) == 60


def test_kmeans_centroids_are_per_class(digits):
    train, _ = digits
    x, y = train.images, train.labels
    # One cluster per class is exactly the class mean, i.e. the average-real image.
    one = kmeans_centroids(x, y, 10, 1, 1, seed=0)
    assert torch.allclose(one, average_real(x, y, 10, 1, 1), atol=1e-5)
    # Two tight clusters per class, interleaved across classes: class 0 at pixel values 0 (6 images) and 10
    # (4), class 1 at 1 (3) and 11 (7). Clustering each class alone finds exactly its own two centres,
    # larger cluster first.
    values = torch.tensor([0.0] * 6 + [10.0] * 4 + [1.0] * 3 + [11.0] * 7)
    noise = 0.01 * torch.randn(20, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    x = values[:, None, None, None] + noise - noise.mean(dim=(1, 2, 3), keepdim=True)
    y = torch.tensor([0] * 10 + [1] * 10)
    centres = kmeans_centroids(x, y, 2, 2, 1, seed=0)  # [2 classes, 2, 1, 2, 2]
    assert centres.shape == (2, 2, 1, 2, 2)
    assert torch.allclose(
        centres.mean(dim=(2, 3, 4)), torch.tensor([[0.0, 10.0], [11.0, 1.0]]), atol=1e-4
    )


def test_one_nn_on_kmeans_beats_chance_and_random(digits):
    train, test = digits
    per_class = kmeans_centroids(train.images, train.labels, 10, 5, 1, seed=0)  # 50 centroids
    ref, ref_y = per_class.reshape(50, 1, 8, 8), torch.arange(10).repeat_interleave(5)
    acc = nearest_neighbour_accuracy(ref, ref_y, test.images, test.labels)
    assert acc > 80.0  # chance is 10%
    # The classifier really is 1-NN: each reference image is classified as its own label.
    assert nearest_neighbour_accuracy(ref, ref_y, ref, ref_y) == 100.0
