"""Augmentation: DSA's shapes kept, repeatable from its generator, every family reachable; DC's against DC's loop."""

import pytest
import torch
import torch.nn.functional as F

from datadistill.augment import (
    DC_CROP,
    DC_FAMILIES,
    DC_ROTATE,
    FAMILIES,
    DcDraw,
    apply_dc,
    augment_batch,
    dc_augment,
    draw_dc,
    dsa_augment,
)


def test_augmentation_keeps_shapes_and_repeats_with_the_same_generator():
    images = torch.randn(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    a = dsa_augment(images, torch.Generator().manual_seed(3))
    b = dsa_augment(images, torch.Generator().manual_seed(3))
    assert a.shape == images.shape and torch.equal(a, b)


def test_every_family_changes_the_images_and_stays_finite():
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    seen = set()
    for seed in range(60):
        gen = torch.Generator().manual_seed(seed)
        family = FAMILIES[int(torch.randint(len(FAMILIES), (1,), generator=gen))]
        out = dsa_augment(images, torch.Generator().manual_seed(seed))
        assert torch.isfinite(out).all()
        assert not torch.allclose(out, images), family
        seen.add(family)
    assert seen == set(FAMILIES)


def test_cutout_zeroes_a_square_of_about_a_quarter_of_the_image():
    images = torch.ones(4, 1, 16, 16)
    for seed in range(60):
        gen = torch.Generator().manual_seed(seed)
        if FAMILIES[int(torch.randint(len(FAMILIES), (1,), generator=gen))] == "cutout":
            out = dsa_augment(images, torch.Generator().manual_seed(seed))
            zeroed = (out == 0).float().mean(dim=(1, 2, 3))
            assert ((zeroed > 0.05) & (zeroed <= 0.25)).all() and zeroed.max() == 0.25
            return
    raise AssertionError("no seed drew cutout")


def test_augment_batch_is_dsa_or_the_images_untouched():
    images = torch.randn(6, 1, 12, 12)
    assert augment_batch(images, "none", None) is images
    got = augment_batch(images, "dsa", torch.Generator().manual_seed(4))
    assert torch.equal(got, dsa_augment(images, torch.Generator().manual_seed(4)))


# DC's crop_scale_rotate: each transform against a per-image reference written the way DC's augment() does it.


def _dc_reference(images, draw):
    """DC's loop over images (utils.augment), with the draws given instead of numpy's, rotation left out."""
    n, c, h, w = images.shape
    mean = images.mean(dim=(0, 2, 3))
    out = images.clone()
    for i in range(n):
        family = DC_FAMILIES[int(draw.family[i])]
        if family == "crop":
            padded = mean.view(c, 1, 1).expand(c, h + 2 * DC_CROP, w + 2 * DC_CROP).clone()
            padded[:, DC_CROP : DC_CROP + h, DC_CROP : DC_CROP + w] = images[i]
            r, q = (int(v) + DC_CROP for v in draw.shift[i])
            out[i] = padded[:, r : r + h, q : q + w]
        elif family == "scale":
            sh, sw = (int(v) for v in draw.size[i])
            resized = F.interpolate(images[i : i + 1], [sh, sw])[0]
            m = max(sh, sw, h, w)
            canvas = torch.zeros(c, m, m, dtype=images.dtype)
            r, q = (m - sh) // 2, (m - sw) // 2
            canvas[:, r : r + sh, q : q + sw] = resized
            r, q = (m - h) // 2, (m - w) // 2
            out[i] = canvas[:, r : r + h, q : q + w]
    return out


@pytest.mark.parametrize("height, width", [(28, 28), (32, 32), (28, 20)])
def test_dc_crop_and_scale_equal_dcs_own_loop(height, width):
    gen = torch.Generator().manual_seed(height + width)
    images = torch.randn(256, 2, height, width, generator=gen)
    draw = draw_dc(256, height, width, gen)
    not_rotated = draw.family != DC_FAMILIES.index("rotate")
    got = apply_dc(images, draw)
    assert torch.equal(got[not_rotated], _dc_reference(images, draw)[not_rotated])
    assert set(draw.family.tolist()) == {0, 1, 2}
    assert draw.shift.min() >= -DC_CROP and draw.shift.max() < DC_CROP
    assert draw.size[:, 0].min() >= int(0.8 * height) and draw.size[:, 0].max() < 1.2 * height
    assert draw.angle.min() >= -DC_ROTATE and draw.angle.max() < DC_ROTATE


def _one(family: str, n: int = 1, **fields):
    base = {
        "family": torch.full((n,), DC_FAMILIES.index(family)),
        "shift": torch.zeros(n, 2, dtype=torch.long),
        "size": torch.full((n, 2), 28),
        "angle": torch.zeros(n, dtype=torch.long),
    }
    return DcDraw(**(base | fields))


def test_dc_rotation_by_0_and_90_degrees_is_exact_and_fills_with_the_batch_mean():
    images = torch.randn(
        3, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    assert torch.allclose(apply_dc(images, _one("rotate", 3)), images, atol=1e-12)
    quarter = apply_dc(images, _one("rotate", 3, angle=torch.full((3,), 90)))
    assert torch.allclose(quarter, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-12)
    constant = torch.full((2, 1, 28, 28), 0.7, dtype=torch.float64)
    tilted = apply_dc(constant, _one("rotate", 2, angle=torch.tensor([30, -44])))
    assert torch.allclose(tilted, constant, atol=1e-12)  # the corners are filled with the mean, 0.7


def test_dc_identity_draws_leave_the_images_and_a_shift_moves_them():
    images = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    assert torch.equal(apply_dc(images, _one("crop", 2)), images)
    assert torch.equal(apply_dc(images, _one("scale", 2)), images)
    moved = apply_dc(images, _one("crop", 2, shift=torch.tensor([[2, -3], [0, 0]])))
    assert torch.equal(moved[0, :, :-2, 3:], images[0, :, 2:, :-3])


def test_dc_augmentation_is_differentiable_in_the_pixels():
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(6, 1, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    draw = DcDraw(
        family=torch.tensor([0, 1, 2, 0, 1, 2]),
        shift=torch.tensor([[1, -2]] * 6),
        size=torch.tensor([[8, 10]] * 6),
        angle=torch.tensor([0, 0, 17, 0, 0, -30]),
    )
    # A constant fill: the default, the batch mean, is one too (DC takes it with float()).
    fill = torch.tensor([0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: apply_dc(x, draw, fill), (images,))


def test_augment_batch_dc_repeats_with_its_generator():
    images = torch.randn(6, 1, 12, 12)
    got = augment_batch(images, "dc", torch.Generator().manual_seed(4))
    assert got.shape == images.shape and torch.isfinite(got).all()
    assert torch.equal(got, dc_augment(images, torch.Generator().manual_seed(4)))
    assert not torch.equal(got, images)


def test_dc_rotation_turns_pixels_about_the_centre_on_non_square_images():
    image = torch.zeros(1, 1, 9, 13, dtype=torch.float64)
    image[0, 0, 4, 9] = 1.0  # 3 pixels right of the centre (4, 6)
    turned = apply_dc(
        image, _one("rotate", angle=torch.tensor([90])), torch.zeros(1, dtype=torch.float64)
    )
    assert turned[0, 0, 1, 6] == pytest.approx(1.0) and turned.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(5, 3, 1, 9), (5, 1, 9, 1), (5, 1, 2, 2)])
def test_dc_augmentation_stays_finite_on_thin_images(shape):
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    for seed in range(4):
        out = dc_augment(images, torch.Generator().manual_seed(seed))
        assert out.shape == images.shape and torch.isfinite(out).all()
