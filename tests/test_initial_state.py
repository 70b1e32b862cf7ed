"""Where a distillation starts: which classes each image stands for, and the raw step size's inverse softplus."""

import math

import torch
import torch.nn.functional as F

from datadistill.initial_state import class_cover, inverse_softplus


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
