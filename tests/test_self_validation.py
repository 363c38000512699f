"""Self-validation: synthetic defects drawn deterministically with true masks, held-out images chosen
from their paths, a label-free estimate logged during training, no test image ever read, and the
adaptive budget it drives (cycles while it improves, the best cycle kept; an explicit budget wins)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from anomalib.data import InferenceBatch
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.engine import Engine
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.training import callback as training_callback
from anomalib_fastflow.training import schedule
from anomalib_fastflow.training.cycle_stopping import CycleStopping
from anomalib_fastflow.training.schedule import cyclic_one_cycle
from anomalib_fastflow.training.self_validation import SelfValidationScores, SelfValidationSet, held_out_indices
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


def test_the_set_scores_a_model_that_sees_its_defects_perfectly() -> None:
    """With a model whose map is the defect mask itself, every metric is 1; with a constant one, 0.5."""
    validation = _cached_set()
    assert len(validation) == 4 and validation.labels.tolist() == [0] * 4 + [1] * 4
    perfect = validation.evaluate(_MaskModel(validation.input_masks.float()))
    assert (perfect.image_auroc, perfect.pixel_auroc) == (1.0, 1.0) and perfect.aupro == pytest.approx(1.0)
    assert perfect.family_image_auroc == {"own_surface": 1.0, "perlin": 1.0}
    blind = validation.evaluate(_MaskModel(torch.zeros_like(validation.input_masks)))
    assert (blind.image_auroc, blind.pixel_auroc) == (0.5, 0.5)


def test_scoring_in_a_distributed_run_waits_on_no_other_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Process 0 scores the set alone while the others wait for its broadcast: a metric that gathered
    across processes (torchmetrics' default when a process group exists) would wait forever. Here a
    process group seems to exist and any collective fails."""
    validation = _cached_set()

    def collective(*args: object, **kwargs: object) -> None:
        raise AssertionError("a collective was called")

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    for name in ("all_gather", "all_gather_object", "get_world_size", "broadcast", "all_reduce"):
        monkeypatch.setattr(torch.distributed, name, collective)
    scores = validation.evaluate(_MaskModel(validation.input_masks.float()))
    assert scores.aupro == pytest.approx(1.0)


@pytest.mark.slow
def test_training_reports_the_estimate_and_never_reads_a_test_image(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    said: list[str] = []
    monkeypatch.setattr(training_callback, "rank_zero_info", said.append)
    read_image = anomalib_image_dataset.read_image
    monkeypatch.setattr(anomalib_image_dataset, "read_image", lambda path, **kw: read.append(str(path)) or read_image(path, **kw))
    seed_everything(0)
    datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0, val_split_mode="none")
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    engine = Engine(max_epochs=2, default_root_dir=tmp_path, logger=False, limit_val_batches=0)
    engine.fit(model, datamodule=datamodule)
    assert read and not any("/test/" in path for path in read)
    scores = model.training_callback.self_validation_scores
    assert len(scores) == 2 and all(score.images == 4 for score in scores)  # one estimate per epoch
    assert engine.trainer.callback_metrics["self_validation/image_AUROC"] == pytest.approx(scores[-1].image_auroc)
    assert len(datamodule.train_data) == 12  # the training set is given back whole after the fit
    assert said[-1] == f"Self-validation estimate: {scores[-1]}" and "(on 4 held-out normal training images" in said[-1]


def _scripted(monkeypatch: pytest.MonkeyPatch, image_aurocs: list[float]) -> None:
    """Self-validation returns these image AUROCs, one per call (one call per epoch)."""
    calls = iter(image_aurocs)
    monkeypatch.setattr(
        SelfValidationSet, "evaluate", lambda self, model: SelfValidationScores(next(calls), 0.5, 0.5, len(self), {})
    )


class _FlowSnapshots(Callback):
    """The flows' weights at the end of each epoch (0-based index)."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.by_epoch[trainer.current_epoch] = {k: v.clone() for k, v in pl_module.model.flows.state_dict().items()}


@pytest.mark.slow
def test_no_budget_trains_cycles_while_self_validation_improves_and_keeps_the_best_cycle(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "default_epochs", lambda steps_per_epoch: 2)  # cycles of 2 epochs
    _scripted(monkeypatch, [0.5, 0.6, 0.5, 0.8, 0.5, 0.7, 0.9, 0.9])  # cycles end at 0.6, 0.8, 0.7
    snapshots = _FlowSnapshots()
    seed_everything(0)
    datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    engine = Engine(default_root_dir=tmp_path, logger=False, callbacks=[snapshots])
    engine.fit(model, datamodule=datamodule)
    assert engine.trainer.max_epochs == 2 * CycleStopping().max_cycles and engine.trainer.current_epoch == 6  # stopped after cycle 3
    assert model.training_callback.cycle_epochs == 2
    for name, value in model.model.flows.state_dict().items():  # cycle 2's weights (epoch index 3), not cycle 3's
        torch.testing.assert_close(value, snapshots.by_epoch[3][name])
    kept, later = snapshots.by_epoch[3], snapshots.by_epoch[4]
    assert any(not torch.equal(kept[k], later[k]) for k in kept)  # cycle 3 had moved on


@pytest.mark.slow
def test_a_resumed_adaptive_run_keeps_the_best_cycle_it_had_before(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best cycle's score and weights travel in the checkpoint: resumed after cycle 2 (the best so
    far), a worse cycle 3 stops the run and puts cycle 2's weights back, which the resumed process
    never trained itself. Without them it would take cycle 3 as its first best and train on."""
    monkeypatch.setattr(schedule, "default_epochs", lambda steps_per_epoch: 2)  # cycles of 2 epochs
    checkpoint = tmp_path / "after_cycle_2.ckpt"
    kept: dict[str, torch.Tensor] = {}

    class SaveAfterCycle2(Callback):
        def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
            if trainer.current_epoch == 3:
                trainer.save_checkpoint(checkpoint)
                kept.update({k: v.clone() for k, v in pl_module.model.flows.state_dict().items()})

    def fit(scores: list[float], callbacks: list[Callback], ckpt_path: Path | None) -> tuple[Engine, FastFlow]:
        _scripted(monkeypatch, scores)
        seed_everything(0)
        datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
        model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
        engine = Engine(default_root_dir=tmp_path, logger=False, callbacks=callbacks, limit_val_batches=0)
        engine.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        return engine, model

    fit([0.5, 0.6, 0.5, 0.8, 0.5, 0.7], [SaveAfterCycle2()], None)  # cycles end at 0.6, 0.8, 0.7
    engine, model = fit([0.5, 0.7, 0.5, 0.9], [], checkpoint)  # resumed at epoch 4: cycle 3 ends at 0.7
    assert engine.trainer.current_epoch == 6  # stopped after cycle 3
    assert model.training_callback.best_cycle == 2
    for name, value in model.model.flows.state_dict().items():
        torch.testing.assert_close(value, kept[name])


@pytest.mark.slow
def test_an_explicit_budget_wins_over_the_adaptive_one(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [0.9, 0.5, 0.5])
    datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    engine = Engine(max_epochs=3, default_root_dir=tmp_path, logger=False)
    engine.fit(model, datamodule=datamodule)
    assert engine.trainer.current_epoch == 3 and model.training_callback.cycle_epochs is None


@pytest.mark.slow
def test_keep_best_epoch_puts_back_the_best_epoch_of_an_explicit_budget(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The explicit budget is trained to its end, then the epoch with the best score is put back
    (epoch 2 of 4 here), before the final validation."""
    _scripted(monkeypatch, [0.6, 0.9, 0.7, 0.8])
    snapshots = _FlowSnapshots()
    seed_everything(0)
    datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4, keep_best_epoch=True)
    engine = Engine(max_epochs=4, default_root_dir=tmp_path, logger=False, callbacks=[snapshots])
    engine.fit(model, datamodule=datamodule)
    assert engine.trainer.current_epoch == 4 and model.training_callback.best_epoch == 2
    for name, value in model.model.flows.state_dict().items():  # epoch 2's weights (index 1)
        torch.testing.assert_close(value, snapshots.by_epoch[1][name])
    kept, later = snapshots.by_epoch[1], snapshots.by_epoch[2]
    assert any(not torch.equal(kept[k], later[k]) for k in kept)  # later epochs had moved on


def test_keep_best_epoch_needs_self_validation_and_its_state_travels_in_the_checkpoint() -> None:
    with pytest.raises(ValueError, match="keep_best_epoch=True needs self_validation"):
        training_callback.FastFlowTraining(keep_best_epoch=True)
    saved = training_callback.FastFlowTraining(self_validation=4, keep_best_epoch=True)
    assert saved.state_dict() == {}  # nothing kept yet
    saved.best_epoch, saved._best_epoch_score, saved._best_weights = 3, 0.8, {"flows.w": torch.ones(2)}
    resumed = training_callback.FastFlowTraining(self_validation=4, keep_best_epoch=True)
    resumed.load_state_dict(saved.state_dict())
    assert (resumed.best_epoch, resumed._best_epoch_score) == (3, 0.8)
    torch.testing.assert_close(resumed._best_weights, {"flows.w": torch.ones(2)})


def test_cyclic_schedule_repeats_one_cycle_at_a_halved_peak() -> None:
    def rates(make: object, steps: int) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        scheduler = make(optimizer)
        out = []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    one = rates(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=40, pct_start=0.1), 40)
    cycles = rates(lambda o: cyclic_one_cycle(o, 40, 0.1), 80)
    torch.testing.assert_close(torch.tensor(cycles[:40]), torch.tensor(one))
    torch.testing.assert_close(torch.tensor(cycles[40:]), torch.tensor(one) / 2)


@pytest.mark.slow
def test_thresholds_come_from_the_self_validation_set_not_the_test_split(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MVTec's default validation split is the test split; with self-validation the thresholds and the
    normalisation are fitted on the held-out images instead, and the run says so."""
    said: list[str] = []
    monkeypatch.setattr(training_callback, "rank_zero_info", said.append)
    seed_everything(0)
    datamodule = MVTec(root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    model = FastFlow(input_size=64, flow_steps=2, self_validation=4)
    Engine(max_epochs=2, default_root_dir=tmp_path, logger=False).fit(model, datamodule=datamodule)
    assert any("thresholds and normalisation fitted on the self-validation set (4 held-out" in line for line in said)

    _, validation = SelfValidationSet.hold_out(datamodule.train_data, 4, seed=0)  # the same set, rebuilt
    validation.cache_features(model.pre_processor.transform, model.model.feature_extractor)
    scored = validation.predict(model.model)
    expected = PostProcessor()
    expected.on_validation_batch_end(None, None, scored)
    expected.on_validation_epoch_end(None, None)
    for name in ("_pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max"):
        assert torch.isfinite(getattr(model.post_processor, name)), name
        torch.testing.assert_close(getattr(model.post_processor, name), getattr(expected, name))
    # the image threshold: the highest score of the held-out normal images, none of them flagged
    highest_normal = scored.pred_score.flatten()[scored.gt_label == 0].max()
    torch.testing.assert_close(model.post_processor._image_threshold, highest_normal)
    assert not (scored.pred_score.flatten()[scored.gt_label == 0] > model.post_processor._image_threshold).any()


def test_only_process_zero_scores_the_set_and_every_process_takes_its_scores() -> None:
    """In a distributed run each process holds the whole set; process 0 scores it and broadcasts, so
    all processes log the same estimate and take the same stopping decision."""
    zero, other = SelfValidationScores(0.9, 0.8, 0.7, 2, {}), SelfValidationScores(0.1, 0.1, 0.1, 2, {})
    callback = training_callback.FastFlowTraining(self_validation=2)
    evaluated = []
    callback.validation_set = SimpleNamespace(evaluate=lambda model: evaluated.append(model) or other)
    sent = []

    def broadcast(value: object, src: int = 0) -> SelfValidationScores:
        sent.append((value, src))
        return zero  # what process 0 sent

    model = SimpleNamespace(model="flows")
    for rank_is_zero, expected_sent in ((False, None), (True, other)):
        trainer = SimpleNamespace(is_global_zero=rank_is_zero, strategy=SimpleNamespace(broadcast=broadcast))
        assert callback._evaluate(trainer, model) is zero
        assert sent.pop() == (expected_sent, 0)
    assert evaluated == ["flows"]  # process 0 only
