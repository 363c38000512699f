"""The feature cache: same loss as computing the backbone, memory budget with disk spill, cleanup."""

from pathlib import Path

import torch
from anomalib.data import ImageBatch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.feature_cache import FeatureCache
from anomalib_fastflow.loss import negative_log_likelihood


def _batch(count: int = 4, size: int = 64) -> ImageBatch:
    torch.manual_seed(0)
    return ImageBatch(
        image=torch.rand(count, 3, size, size),
        image_path=[f"train/good/{index:03d}.png" for index in range(count)],
    )


def test_cached_training_gives_the_loss_of_uncached_training(tmp_path: Path) -> None:
    model = FastFlow(input_size=64, flow_steps=2, augmentation="paper")
    batch = _batch()
    uncached = negative_log_likelihood(*model.model.encode(model.training_features(batch)))

    model.feature_cache = FeatureCache(2**30, tmp_path / "spill")
    filled = negative_log_likelihood(*model.model.encode(model.training_features(batch)))
    assert len(model.feature_cache) == len(batch.image)
    model.model.feature_extractor.forward = None  # a cache hit must not run the backbone
    cached = negative_log_likelihood(*model.model.encode(model.training_features(batch)))

    torch.testing.assert_close(filled, uncached)
    torch.testing.assert_close(cached, uncached, rtol=2e-3, atol=0)  # half-precision storage
    assert cached != uncached  # the stored features really are half precision


def test_a_batch_with_some_cached_samples_computes_only_the_others(tmp_path: Path) -> None:
    model = FastFlow(input_size=64, flow_steps=2, augmentation="none")
    batch = _batch(count=4)
    model.feature_cache = FeatureCache(2**30, tmp_path / "spill")
    first_two = ImageBatch(image=batch.image[:2], image_path=batch.image_path[:2])
    model.training_features(first_two)
    seen = []
    backbone_forward = model.model.feature_extractor.forward
    model.model.feature_extractor.forward = lambda images: seen.append(len(images)) or backbone_forward(images)
    mixed = model.training_features(batch)
    assert seen == [2]  # only the two new images went through the backbone
    model.model.feature_extractor.forward = backbone_forward
    expected = model.model.feature_extractor(batch.image)
    for got, want in zip(mixed, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)


def test_samples_over_the_memory_budget_spill_to_disk_and_come_back(tmp_path: Path) -> None:
    features = [torch.randn(6, 8, 4, 4), torch.randn(6, 16, 2, 2)]
    sample_bytes = (8 * 4 * 4 + 16 * 2 * 2) * 2  # one sample in half precision
    cache = FeatureCache(memory_budget_bytes=2 * sample_bytes, spill_dir=tmp_path / "spill")
    keys = [(f"image{index}.png", 0) for index in range(6)]
    cache.store(keys, features)
    assert cache.memory_bytes == 2 * sample_bytes
    assert cache.spilled == 4
    assert len(list((tmp_path / "spill").glob("*.pt"))) == 4

    for index, key in enumerate(keys):  # from memory (0, 1) and from disk (2-5)
        for original, back in zip(features, cache.get(key), strict=True):
            torch.testing.assert_close(back, original[index].half())
    assert cache.get(("image0.png", 1)) is None  # another view of a cached image

    cache.clear()
    assert len(cache) == 0
    assert not (tmp_path / "spill").exists()
