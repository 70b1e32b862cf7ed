"""Where a distillation starts: which classes each image stands for, and the raw step size's inverse softplus."""

import math

import torch
import torch.nn.functional as F

from datadistill.config import DistillConfig
from datadistill.data import load_dataset
from datadistill.formation import encode
from datadistill.initial_state import class_cover, initial_images, inverse_softplus, kmeans


def test_class_cover_gives_every_class_an_image():
    # One image per class, in class order; two per class repeat each class.
    assert torch.equal(class_cover(10, 1, 10), torch.eye(10, dtype=torch.long))
    assert class_cover(20, 2, 10).argmax(1).tolist() == [c for c in range(10) for _ in range(2)]
    # Fewer images than classes: each class belongs to exactly one image, image j covers j, j + 5.
    cover = class_cover(5, 1, 10)
    assert cover.shape == (5, 10) and cover.sum(0).tolist() == [1] * 10
    assert cover[2].nonzero().squeeze(1).tolist() == [2, 7]
    # Uneven split: 3 images for 10 classes cover 4, 3 and 3 classes.
    assert class_cover(3, 1, 10).sum(1).tolist() == [4, 3, 3]


def test_inverse_softplus_inverts_softplus():
    for y in (1e-4, 0.02, 1.0, 5.0):
        assert math.isclose(
            F.softplus(torch.tensor(inverse_softplus(y), dtype=torch.float64)).item(),
            y,
            rel_tol=1e-12,
        )


def test_kmeans_start_is_each_class_s_centroids_largest_cluster_first_per_tile():
    """--init-images kmeans: image j of class c, step s, tile t starts from centroid (j_c, s, t) of k-means over
    class c's training images (k = every start the class needs), the largest clusters at step 0."""
    train = load_dataset("digits", "train")
    cfg = DistillConfig(
        dataset="digits", init_images="kmeans", images_per_class=2, steps=2, formation=2
    ).validate()
    cover = class_cover(20, 2, 10)
    starts = initial_images(cfg, train, cover)  # [2, 20, 1, 8, 8]
    assert torch.equal(starts, initial_images(cfg, train, cover))  # the same start on every rank
    for c in (0, 3, 9):
        pool = (train.labels == c).nonzero().squeeze(1)
        centroids = kmeans(train.take(pool), 2 * 2 * 4, cfg.seed, largest_first=True)
        # [image of the class, step, tile] -> one stored image per (step, image)
        packed = encode(centroids, 2).view(2, 2, 1, 8, 8)
        for j in range(2):
            for s in range(2):
                torch.testing.assert_close(starts[s, 2 * c + j], packed[j, s])
