"""Multi-formation: decoding stored images into F² training images, encoding real ones, and the meta-gradient
through the decoding."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datadistill.formation import (
    check_factor,
    decode,
    decode_set,
    decode_steps,
    decode_targets,
    encode,
)
from datadistill.minibatch_unroll import Recipe, truncated_meta_grad
from datadistill.types import Steps


def test_decode_upsamples_every_tile_in_row_major_order():
    stored = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    decoded = decode(stored, 3)
    assert decoded.shape == (18, 3, 12, 12)
    for m in range(2):
        for i in range(3):
            for j in range(3):
                tile = stored[m : m + 1, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                expected = F.interpolate(tile, size=(12, 12), mode="bilinear", align_corners=False)
                torch.testing.assert_close(decoded[9 * m + 3 * i + j], expected[0], rtol=0, atol=0)


def test_encode_puts_each_image_downsampled_into_its_tile():
    images = torch.rand(8, 1, 28, 28)
    stored = encode(images, 2)
    assert stored.shape == (2, 1, 28, 28)
    small = F.interpolate(
        images, size=(14, 14), mode="bilinear", antialias=True, align_corners=False
    )
    for n in range(8):
        m, i, j = n // 4, (n % 4) // 2, n % 2
        tile = stored[m, :, 14 * i : 14 * i + 14, 14 * j : 14 * j + 14]
        torch.testing.assert_close(tile, small[n], rtol=0, atol=0)


def test_decode_inverts_encode_on_images_that_are_already_upsampled_tiles():
    # A constant tile survives down- and upsampling exactly, so decode ∘ encode is the identity on it.
    levels = torch.rand(8, 2, 1, 1).expand(8, 2, 10, 10)
    torch.testing.assert_close(decode(encode(levels, 2), 2), levels, rtol=0, atol=1e-6)


def test_factor_one_changes_nothing():
    images, targets = torch.randn(5, 1, 7, 7), torch.arange(5)
    assert decode(images, 1) is images and encode(images, 1) is images
    assert decode_targets(targets, 1) is targets


def test_every_decoded_image_keeps_its_stored_image_label():
    assert decode_targets(torch.tensor([3, 1]), 2).tolist() == [3, 3, 3, 3, 1, 1, 1, 1]
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    torch.testing.assert_close(decode_targets(soft, 2)[4:], soft[1].expand(4, 2))


def test_a_stored_schedule_decodes_into_one_detached_training_set():
    images = torch.randn(2, 3, 1, 4, 4, requires_grad=True)  # [steps, per_step, C, H, W]
    x, y = decode_set(images, torch.arange(6).view(2, 3), 2)
    torch.testing.assert_close(x, decode(images.detach().reshape(6, 1, 4, 4), 2), rtol=0, atol=0)
    assert y.tolist() == [c for c in range(6) for _ in range(4)] and not x.requires_grad
    _, soft = decode_set(images, torch.rand(2, 3, 5), 2)
    assert soft.shape == (24, 5)


def test_a_replay_schedule_decodes_step_by_step_and_keeps_its_graph():
    images = torch.randn(2, 3, 1, 4, 4, requires_grad=True)  # [steps, per_step, C, H, W]
    lrs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    decoded = decode_steps(Steps(images, torch.arange(6).view(2, 3), lrs), 2)
    assert decoded.images.shape == (2, 12, 1, 4, 4) and decoded.lrs is lrs
    torch.testing.assert_close(decoded.images[1], decode(images[1], 2), rtol=0, atol=0)
    assert decoded.labels[1].tolist() == [c for c in (3, 4, 5) for _ in range(4)]
    assert decoded.images.requires_grad  # the meta-gradient flows back through it
    soft = torch.rand(2, 3, 5, requires_grad=True)
    decoded_soft = decode_steps(Steps(images, soft, lrs), 2)
    assert decoded_soft.labels.shape == (2, 12, 5) and decoded_soft.labels.requires_grad
    torch.testing.assert_close(decoded_soft.labels[0, 4:8], soft[0, 1].expand(4, 5))
    same = Steps(images, soft, lrs)
    assert decode_steps(same, 1) is same


@pytest.mark.parametrize("factor, shape", [(3, (1, 28, 28)), (4, (3, 28, 30)), (5, (1, 10, 12))])
def test_a_factor_that_does_not_divide_the_images_is_one_clear_line(factor, shape):
    with pytest.raises(ValueError, match=f"--formation {factor} must divide") as err:
        check_factor(factor, shape)
    assert "\n" not in str(err.value)
    check_factor(2, (1, 28, 28))  # 14x14 tiles


def test_meta_gradient_reaches_the_stored_pixels_through_the_decoding():
    """With F = 2 the meta-gradient of the stored images is the decoded images' meta-gradient pulled back
    through ``decode`` (float64, the same draws)."""
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(32, 4)).double()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    real_x = torch.randn(10, 1, 6, 6, generator=g, dtype=torch.float64)
    real_y = torch.randint(0, 4, (10,), generator=g)

    def objective(model, theta):
        return F.cross_entropy(torch.func.functional_call(model, theta, (real_x,)), real_y)

    stored = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 3])
    recipe = Recipe(optimizer="momentum", updates=5, batch_size=3)
    lr = torch.tensor([0.07], dtype=torch.float64)
    got = truncated_meta_grad(
        model,
        params,
        stored,
        labels,
        lr,
        recipe,
        objective,
        window=2,
        generator=torch.Generator().manual_seed(4),
        formation=2,
    )
    x = stored.clone().requires_grad_()
    decoded = decode(x, 2)
    on_decoded = truncated_meta_grad(
        model,
        params,
        decoded.detach(),
        decode_targets(labels, 2),
        lr,
        recipe,
        objective,
        window=2,
        generator=torch.Generator().manual_seed(4),
    )
    (pulled_back,) = torch.autograd.grad(decoded, x, on_decoded.images)
    assert got.images.shape == stored.shape
    torch.testing.assert_close(got.images, pulled_back, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(got.lrs, on_decoded.lrs, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(got.loss, on_decoded.loss, rtol=1e-12, atol=0)
