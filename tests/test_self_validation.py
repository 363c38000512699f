"""Self-validation: synthetic defects drawn deterministically with true masks, held-out images chosen
from their paths, no test image ever read, and the post-processor's thresholds fitted on them."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from anomalib.data import ImageBatch, InferenceBatch
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.engine import Engine
from anomalib.post_processing import PostProcessor
from lightning.pytorch import seed_everything
from lightning.pytorch.trainer.states import TrainerStatus

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.post_processor import FastFlowPostProcessor, between_scores
from anomalib_fastflow.training import self_validation
from anomalib_fastflow.training.self_validation import SelfValidation, SelfValidationSet, held_out_indices
from anomalib_fastflow.training.synthetic_defects import FAMILIES, draw_defect


def _image(seed: int = 0, size: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, size, size, generator=generator)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_defect_is_drawn_from_its_key_and_its_mask_covers_what_changed(family: str) -> None:
    image = _image()
    torch.manual_seed(5)
    before = torch.rand(1)
    defective, mask = draw_defect(image, "train/good/000.png", family)
    again, mask_again = draw_defect(image, "train/good/000.png", family)
    other, _ = draw_defect(image, "train/good/001.png", family)
    torch.manual_seed(5)
    assert torch.rand(1) == before  # torch's global random state is untouched
    assert torch.equal(defective, again) and torch.equal(mask, mask_again)
    assert not torch.equal(defective, other)
    assert mask.shape == (1, 64, 64) and set(mask.unique().tolist()) == {0.0, 1.0}
    changed = (defective != image).any(dim=0, keepdim=True)
    assert not changed[mask == 0].any()  # nothing changes outside the mask
    assert changed[mask == 1].float().mean() > 0.5  # and most of the masked pixels do change


def test_held_out_images_depend_on_the_relative_paths_and_the_seed_only() -> None:
    paths = [f"/data/a/train/good/{index:03d}.png" for index in range(20)]
    moved = [path.replace("/data/a/", "/elsewhere/b/") for path in paths]
    held = held_out_indices(paths, 4, seed=0)
    assert held == held_out_indices(moved, 4, seed=0) and len(held) == 4
    assert held != held_out_indices(paths, 4, seed=1)
    with pytest.raises(ValueError, match="would hold out all 3 training images"):
        held_out_indices(paths[:3], 3, seed=0)


class _Listed(torch.nn.Identity):
    """A feature extractor that returns the image as its one feature map."""

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        return [inputs]


class _MaskModel(torch.nn.Module):
    """A ``FastFlowModel`` stand-in whose anomaly maps are ``maps``."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.flows = torch.nn.Linear(1, 1)
        self.maps = maps

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return features, []

    def score(self, latents: list[torch.Tensor]) -> InferenceBatch:
        return InferenceBatch(pred_score=self.maps.flatten(1).amax(1), anomaly_map=self.maps)


def _cached_set(images: int = 4) -> SelfValidationSet:
    names = [f"{seed}.png" for seed in range(images)]
    validation = SelfValidationSet([_image(seed) for seed in range(images)], names)
    validation.cache_features(torch.nn.Identity(), _Listed())
    return validation


def test_the_set_predicts_normal_images_then_their_defects_with_masks() -> None:
    """A model whose map is the defect mask itself: the batch holds N normal images (label 0, empty
    masks) then the same N with defects (label 1, their masks), scored by that model."""
    validation = _cached_set()
    batch = validation.predict(_MaskModel(validation.input_masks.float()))
    assert len(validation) == 4 and batch.gt_label.tolist() == [0] * 4 + [1] * 4
    assert not batch.gt_mask[:4].any() and all(mask.any() for mask in batch.gt_mask[4:])
    assert batch.pred_score.flatten().tolist() == [0.0] * 4 + [1.0] * 4
    with pytest.raises(RuntimeError, match="needs cache_features first"):
        SelfValidationSet([_image()], ["a.png"]).predict(_MaskModel(torch.zeros(2, 1, 64, 64)))


def test_fit_held_out_sets_the_image_threshold_at_the_highest_normal_score() -> None:
    """Normalisation and the pixel threshold as anomalib's validation fits them on the same batch; the
    image threshold at the highest normal score, so no held-out normal image is flagged; a later
    validation run forgets it and refits; a plain PostProcessor's checkpoint state loads (NaN: unset)."""
    validation = _cached_set()
    torch.manual_seed(0)
    maps = validation.input_masks.float() + 0.3 * torch.rand_like(validation.input_masks.float())
    batch = validation.predict(_MaskModel(maps))
    post, reference = FastFlowPostProcessor(), PostProcessor()
    post.fit_held_out(batch)
    reference.on_validation_batch_end(None, None, batch)
    reference.on_validation_epoch_end(None, None)
    for name in ("pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max"):
        torch.testing.assert_close(getattr(post, name), getattr(reference, name))
    normal = batch.pred_score.flatten()[batch.gt_label == 0]
    torch.testing.assert_close(post.image_threshold, normal.max())
    assert not torch.isclose(post.image_threshold, reference.image_threshold)  # F1 would put it elsewhere
    assert not (post(InferenceBatch(pred_score=normal, anomaly_map=maps[:4])).pred_label).any()
    post.on_validation_batch_end(None, None, batch)
    post.on_validation_epoch_end(None, None)  # anomalib's F1 cut, moved between two validation scores
    torch.testing.assert_close(
        post.image_threshold, between_scores(reference.image_threshold, batch.pred_score.flatten())
    )
    defects_only = ImageBatch(
        image=torch.zeros(2, 3, 8, 8), pred_score=torch.ones(2), anomaly_map=torch.ones(2, 1, 8, 8),
        gt_label=torch.ones(2, dtype=torch.long), gt_mask=torch.ones(2, 8, 8, dtype=torch.bool),
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs held-out normal images"):
        post.fit_held_out(defects_only)


@pytest.mark.slow
def test_training_never_reads_a_test_image_and_gives_the_training_set_back(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    said: list[str] = []
    monkeypatch.setattr(self_validation, "rank_zero_info", said.append)
    read_image = anomalib_image_dataset.read_image
    monkeypatch.setattr(
        anomalib_image_dataset,
        "read_image",
        lambda path, **kw: read.append(str(path)) or read_image(path, **kw),
    )
    seed_everything(0)
    datamodule = MVTec(
        root=tiny_dataset,
        category="brick",
        train_batch_size=4,
        eval_batch_size=4,
        num_workers=0,
        val_split_mode="none",
    )
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    engine = Engine(max_epochs=2, default_root_dir=tmp_path, logger=False, limit_val_batches=0)
    engine.fit(model, datamodule=datamodule)
    assert read and not any("/test/" in path for path in read)
    assert len(datamodule.train_data) == 12  # the training set is given back whole after the fit
    assert any(
        "thresholds and normalisation fitted on 4 held-out normal training images" in line for line in said
    )


@pytest.mark.slow
def test_thresholds_come_from_the_held_out_set_not_the_test_split(tiny_dataset: Path, tmp_path: Path) -> None:
    """MVTec's default validation split is the test split, validated after the last epoch; with
    self-validation the thresholds and the normalisation are then fitted on the held-out images."""
    seed_everything(0)
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    Engine(max_epochs=2, default_root_dir=tmp_path, logger=False).fit(model, datamodule=datamodule)

    _, validation = SelfValidationSet.hold_out(datamodule.train_data, 4, seed=0)  # the same set, rebuilt
    validation.cache_features(model.pre_processor.transform, model.model.feature_extractor)
    scored = validation.predict(model.model)
    expected = PostProcessor()
    expected.on_validation_batch_end(None, None, scored)
    expected.on_validation_epoch_end(None, None)
    for name in ("pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max"):
        assert torch.isfinite(getattr(model.post_processor, name)), name
        torch.testing.assert_close(getattr(model.post_processor, name), getattr(expected, name))
    highest_normal = scored.pred_score.flatten()[scored.gt_label == 0].max()
    torch.testing.assert_close(model.post_processor.image_threshold, highest_normal)


def test_the_callback_alone_holds_out_scores_on_process_zero_and_gives_the_set_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``SelfValidation`` on its own, with stand-ins for the trainer: the training set loses the held-out
    images for the fit; after it, process 0 predicts, every process fits the broadcast batch, and the
    datamodule gets the whole set back; an interrupted fit fits nothing."""
    dataset = SimpleNamespace(name="full")
    held = SimpleNamespace(name="held")
    predicted, fitted, sent = [], [], []

    class _Set:
        def __len__(self) -> int:
            return 2

        def cache_features(self, transform: object, backbone: object) -> None:
            pass

        def predict(self, model: object) -> str:
            predicted.append(model)
            return "process 0's batch"

    def hold_out(data: object, count: int, seed: int) -> tuple[object, _Set]:
        assert (data, count, seed) == (dataset, 2, 0)
        return held, _Set()

    post = FastFlowPostProcessor()
    post.fit_held_out = fitted.append
    model = SimpleNamespace(post_processor=post, model="flows", pre_processor=SimpleNamespace(transform=None))
    model.model = SimpleNamespace(feature_extractor=None)

    def broadcast(value: object, src: int = 0) -> str:
        sent.append(value)
        return "process 0's batch"

    for rank_is_zero, status in (
        (True, TrainerStatus.FINISHED),
        (False, TrainerStatus.FINISHED),
        (True, TrainerStatus.INTERRUPTED),
    ):
        datamodule = SimpleNamespace(train_data=dataset)
        trainer = SimpleNamespace(
            datamodule=datamodule, is_global_zero=rank_is_zero, state=SimpleNamespace(status=status),
            strategy=SimpleNamespace(broadcast=broadcast),
        )  # fmt: skip
        callback = SelfValidation(2)
        monkeypatch.setattr(SelfValidationSet, "hold_out", staticmethod(hold_out))
        callback.setup(trainer, model, "fit")
        assert datamodule.train_data is held
        callback.on_fit_end(trainer, model)
        assert datamodule.train_data is dataset
    assert len(predicted) == 1  # process 0 of the finished fits only
    assert sent == ["process 0's batch", None]
    assert fitted == ["process 0's batch", "process 0's batch"]  # not after the interrupted fit
    with pytest.raises(ValueError, match="self_validation=0: hold out 1 or more"):
        SelfValidation(0)
