"""DSA-style augmentation: shapes kept, repeatable from its generator, every family reachable."""

import torch

from datadistill.augment import FAMILIES, augment_batch, dsa_augment


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
