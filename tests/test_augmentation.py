"""Training views: the paper's flips and rotations, fixed per view, masks aligned, safe per category."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.training.views import (
    AFFINE_RANGES,
    NO_AUGMENTATION,
    PAPER_AUGMENTATION,
    TrainingViews,
    common_folder,
    resolve_augmentation,
)

KEYS = [f"train/good/{index:03d}.png" for index in range(16)]


def test_views_keep_masks_aligned_with_images() -> None:
    images = torch.rand(len(KEYS), 3, 32, 32)
    masks = (images[:, :1] > 0.7).float()  # a mask that is a function of the pixels under it
    views = TrainingViews(PAPER_AUGMENTATION, num_views=4)
    changed = 0
    for view in range(4):
        chosen = [view] * len(KEYS)
        viewed_images = views.apply(images, KEYS, chosen)
        viewed_masks = views.apply(masks, KEYS, chosen)
        torch.testing.assert_close(viewed_masks, (viewed_images[:, :1] > 0.7).float(), rtol=0, atol=0)
        changed += sum(not torch.equal(a, b) for a, b in zip(viewed_images, images, strict=True))
    assert changed > len(KEYS)  # views 1-3 do flip and rotate most images


def test_view_zero_is_the_image_and_views_are_the_same_every_time() -> None:
    images = torch.rand(len(KEYS), 3, 16, 16)
    views = TrainingViews(PAPER_AUGMENTATION, num_views=4, seed=3)
    assert torch.equal(views.apply(images, KEYS, [0] * len(KEYS)), images)
    chosen = [index % 4 for index in range(len(KEYS))]
    assert torch.equal(
        views.apply(images, KEYS, chosen),
        TrainingViews(PAPER_AUGMENTATION, 4, seed=3).apply(images, KEYS, chosen),
    )


def test_every_view_is_used_once_per_cycle_of_epochs() -> None:
    views = TrainingViews(PAPER_AUGMENTATION, num_views=4)
    per_epoch = [views.views_for_epoch(KEYS, epoch) for epoch in range(4)]
    for index in range(len(KEYS)):
        assert sorted(epoch_views[index] for epoch_views in per_epoch) == [0, 1, 2, 3]
    assert TrainingViews(NO_AUGMENTATION, num_views=4).num_views == 1


def test_rotations_keep_the_shape_of_non_square_images() -> None:
    images = torch.rand(len(KEYS), 3, 16, 24)
    assert TrainingViews(PAPER_AUGMENTATION, 4).apply(images, KEYS, [1] * len(KEYS)).shape == images.shape


def test_per_category_defaults_follow_the_paper() -> None:
    assert resolve_augmentation("auto", "transistor") == NO_AUGMENTATION  # paper: no flip, no rotation
    assert resolve_augmentation("auto", "carpet") == PAPER_AUGMENTATION
    assert resolve_augmentation("auto", "metal_nut").hflip == 0  # "flip" is one of its defect types
    assert resolve_augmentation("auto", "my_parts") == NO_AUGMENTATION  # unknown: safe
    assert resolve_augmentation("paper", "transistor") == PAPER_AUGMENTATION
    with pytest.raises(ValueError, match="augmentation='flips' is not one of"):
        resolve_augmentation("flips", "carpet")


def test_views_are_drawn_from_paths_relative_to_the_training_folder() -> None:
    images = torch.rand(len(KEYS), 3, 8, 8)
    here = TrainingViews(PAPER_AUGMENTATION, 4, root=Path("/data/here"))
    there = TrainingViews(PAPER_AUGMENTATION, 4, root=Path("/mnt/there/copy"))
    here_paths = [f"/data/here/{key}" for key in KEYS]
    there_paths = [f"/mnt/there/copy/{key}" for key in KEYS]
    assert here.key(here_paths[0]) == KEYS[0]
    assert here.views_for_epoch(here_paths, 5) == there.views_for_epoch(there_paths, 5)
    views = [1 + index % 3 for index in range(len(KEYS))]
    assert torch.equal(here.apply(images, here_paths, views), there.apply(images, there_paths, views))
    paths = ["/data/here/train/good/0.png", "/data/here/train/good/1.png"]
    assert common_folder(paths) == Path("/data/here/train/good")


def test_affine_views_move_the_image_slightly_the_same_way_every_epoch() -> None:
    images = torch.rand(len(KEYS), 3, 32, 32)
    plain = TrainingViews(resolve_augmentation("none", None), 4)
    affine = TrainingViews(resolve_augmentation("none", None, affine=1.0), 4)
    assert plain.num_views == 1 and affine.num_views == 4
    views = [1 + index % 3 for index in range(len(KEYS))]
    moved = affine.apply(images, KEYS, views)
    assert torch.equal(moved, affine.apply(images, KEYS, views))  # a view is fixed: cacheable
    assert torch.equal(affine.apply(images, KEYS, [0] * len(KEYS)), images)  # view 0 is the image
    assert moved.shape == images.shape
    assert all(not torch.equal(a, b) for a, b in zip(moved, images, strict=True))
    assert resolve_augmentation("auto", "carpet", affine=0.5) == replace(PAPER_AUGMENTATION, affine=0.5)
    with pytest.raises(
        ValueError, match=r"affine_views=-1: the views' ranges are 0 \(none\) or a positive multiple"
    ):
        FastFlow(input_size=64, flow_steps=2, affine_views=-1)


def test_smaller_affine_views_narrow_the_views_ranges() -> None:
    """A quarter of the paper's ranges: views move about as far as a part placed by hand."""
    smooth = (
        torch.linspace(0, 1, 64)[None, None, :].expand(len(KEYS), 3, 64, 64)
        * torch.linspace(0, 1, 64)[:, None]
    )
    views = [1 + index % 3 for index in range(len(KEYS))]
    moved = {}
    for scale in (1.0, 0.25):
        training_views = TrainingViews(resolve_augmentation("none", None, affine=scale), 4)
        moved[scale] = (training_views.apply(smooth, KEYS, views) - smooth).abs().mean(dim=(1, 2, 3))
    assert (moved[0.25] > 0).all()  # still moved
    assert moved[0.25].mean() < 0.5 * moved[1.0].mean()  # but less
    ranges = AFFINE_RANGES.scaled(0.25)
    assert ranges.max_rotation == pytest.approx(3.75) and ranges.max_translation == pytest.approx(0.0375)
    assert ranges.zoom_ratio == pytest.approx(0.85**0.25)
