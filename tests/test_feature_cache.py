"""The feature cache: same loss as computing the backbone, memory budget with disk spill, cleanup,
and no image read again once its features are cached."""

import pickle
from pathlib import Path

import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.data.datasets.base import AnomalibDataset
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.loss import negative_log_likelihood
from anomalib_fastflow.training.cached_views import CachedViewsDataset
from anomalib_fastflow.training.feature_cache import FeatureCache
from anomalib_fastflow.training.view_features import ViewFeatures
from anomalib_fastflow.training.views import TrainingViews, resolve_augmentation


def _batch(count: int = 4, size: int = 64) -> ImageBatch:
    torch.manual_seed(0)
    return ImageBatch(
        image=torch.rand(count, 3, size, size),
        image_path=[f"train/good/{index:03d}.png" for index in range(count)],
    )


def _view_features(augmentation: str) -> ViewFeatures:
    return ViewFeatures(TrainingViews(resolve_augmentation(augmentation, None), num_views=4))


def test_cached_training_gives_the_loss_of_uncached_training(tmp_path: Path) -> None:
    model = FastFlow(input_size=64, flow_steps=2)
    views, backbone, batch = _view_features("paper"), model.model.feature_extractor, _batch()
    uncached = negative_log_likelihood(*model.model.encode(views(batch, 0, backbone)))

    views.cache = FeatureCache(2**30, tmp_path / "spill")
    filled = negative_log_likelihood(*model.model.encode(views(batch, 0, backbone)))
    assert len(views.cache) == len(batch.image)
    backbone.forward = None  # a cache hit must not run the backbone
    cached = negative_log_likelihood(*model.model.encode(views(batch, 0, backbone)))

    torch.testing.assert_close(filled, uncached)
    torch.testing.assert_close(cached, uncached, rtol=2e-3, atol=0)  # half-precision storage
    assert cached != uncached  # the stored features really are half precision


def test_a_batch_with_some_cached_samples_computes_only_the_others(tmp_path: Path) -> None:
    model = FastFlow(input_size=64, flow_steps=2)
    views, backbone, batch = _view_features("none"), model.model.feature_extractor, _batch(count=4)
    views.cache = FeatureCache(2**30, tmp_path / "spill")
    views(ImageBatch(image=batch.image[:2], image_path=batch.image_path[:2]), 0, backbone)
    seen = []
    backbone_forward = backbone.forward
    backbone.forward = lambda images: seen.append(len(images)) or backbone_forward(images)
    mixed = views(batch, 0, backbone)
    assert seen == [2]  # only the two new images went through the backbone
    backbone.forward = backbone_forward
    expected = backbone(batch.image)
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


class _ImageReads:
    """Counts the images anomalib's datasets decode, by path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        read = anomalib_image_dataset.read_image

        def counted(path: str, *args: object, **kwargs: object) -> torch.Tensor:
            self.paths.append(str(path))
            return read(path, *args, **kwargs)

        monkeypatch.setattr(anomalib_image_dataset, "read_image", counted)


def _training_set(root: Path) -> AnomalibDataset:
    datamodule = MVTec(root=root, category="brick", num_workers=0)
    datamodule.setup("fit")
    return datamodule.train_data


def test_batches_of_cached_views_are_not_read(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _ImageReads(monkeypatch)
    train = _training_set(tiny_dataset)
    views = TrainingViews(resolve_augmentation("paper", None), num_views=2)
    dataset = CachedViewsDataset(train, views)
    paths = [str(path) for path in train.samples["image_path"]]
    epoch_views = views.views_for_epoch(paths, epoch=3)

    dataset.start_epoch(3, frozenset())
    read = dataset.__getitems__([0, 1])
    assert reads.paths == paths[:2] and read[0].image.shape[-2:] == (96, 96)

    dataset.start_epoch(3, frozenset(zip(paths[:2], epoch_views[:2], strict=True)))
    placeholders = pickle.loads(pickle.dumps(dataset)).__getitems__([0, 1])  # as in a worker process
    assert reads.paths == paths[:2]  # nothing more read
    assert [item.image_path for item in placeholders] == paths[:2]
    assert all(item.image.shape == (3, 1, 1) and item.gt_label == 0 for item in placeholders)
    batch = train.collate_fn(placeholders)
    assert batch.image.shape == (2, 3, 1, 1) and batch.image_path == paths[:2]

    assert len(dataset.__getitems__([1, 2])) == 2  # one sample not cached: the batch is read
    assert reads.paths == [*paths[:2], *paths[1:3]]
    dataset.start_epoch(4, dataset.cached)  # other views in the next epoch: read again
    dataset.__getitems__([0, 1])
    assert reads.paths[-2:] == paths[:2]
    assert dataset.task == train.task and len(dataset) == len(train)  # the rest is the dataset's


@pytest.mark.slow
def test_a_fit_reads_each_training_image_once_and_trains_as_if_it_read_them_all(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _ImageReads(monkeypatch)
    weights = []
    for skip_cached_images in (True, False):
        if not skip_cached_images:  # a training set that is never told what is cached reads every batch
            monkeypatch.setattr(CachedViewsDataset, "start_epoch", lambda *args: None)
        reads.paths.clear()
        seed_everything(0)
        model = FastFlow(input_size=64, flow_steps=2, augmentation="none")
        datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, num_workers=0)
        Engine(max_epochs=3, default_root_dir=tmp_path, logger=False, limit_val_batches=0).fit(
            model, datamodule
        )
        training_reads = [path for path in reads.paths if "/train/" in path]
        assert len(training_reads) == (12 if skip_cached_images else 3 * 12)
        assert not isinstance(datamodule.train_data, CachedViewsDataset)  # given back after the fit
        weights.append(model.model.flows.state_dict())
    for name, tensor in weights[0].items():
        torch.testing.assert_close(tensor, weights[1][name], atol=0, rtol=0)


def test_a_spill_left_by_a_killed_run_is_removed_when_the_next_cache_opens(tmp_path: Path) -> None:
    spill = tmp_path / "feature_cache" / "rank0"
    spill.mkdir(parents=True)
    (spill / "stale.pt").write_bytes(b"left by a run that was killed")
    cache = FeatureCache(0, spill)
    assert not spill.exists() and len(cache) == 0
    cache.store([("a.png", 0)], [torch.ones(1, 2, 4, 4)])
    assert [path.name for path in spill.iterdir()] != ["stale.pt"] and cache.spilled == 1
