"""FastFlow's training callbacks, each on its own, with stand-ins for the trainer and the model."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from anomalib.engine import Engine
from lightning.pytorch import Callback, seed_everything
from torch.utils.data import DataLoader, SequentialSampler

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.training.budget import DefaultBudget
from anomalib_fastflow.training.cached_views import CachedViewsDataset
from anomalib_fastflow.training.guards import NonFiniteGuard
from anomalib_fastflow.training.samplers import EpochSeededSampler, SeededOrder
from anomalib_fastflow.training.self_validation import SelfValidation
from anomalib_fastflow.training.view_feature_cache import ViewFeatureCache
from anomalib_fastflow.training.views import PAPER_AUGMENTATION


def _trainer(max_epochs: int, max_steps: int = -1, batches: int = 5) -> SimpleNamespace:
    loader = list(range(batches))
    return SimpleNamespace(
        max_epochs=max_epochs, max_steps=max_steps, world_size=1, accumulate_grad_batches=1,
        fit_loop=SimpleNamespace(max_epochs=max_epochs), check_val_every_n_epoch=1,
        datamodule=SimpleNamespace(train_dataloader=lambda: loader),
    )  # fmt: skip


def test_default_budget_replaces_lightnings_1000_epochs_only_and_validates_once() -> None:
    unset = _trainer(1000)  # what Lightning makes of max_epochs=None
    DefaultBudget().setup(unset, None, "fit")
    assert unset.fit_loop.max_epochs == 25  # 5 steps per epoch: 125 steps
    given = _trainer(3)
    DefaultBudget().setup(given, None, "fit")
    DefaultBudget().on_fit_start(given, None)
    assert (given.fit_loop.max_epochs, given.check_val_every_n_epoch) == (3, 3)
    by_steps = _trainer(1000, max_steps=7)
    DefaultBudget().setup(by_steps, None, "fit")
    assert by_steps.fit_loop.max_epochs == 1000
    DefaultBudget().setup(testing := _trainer(1000), None, "test")
    assert testing.fit_loop.max_epochs == 1000
    every_other = _trainer(6)
    every_other.check_val_every_n_epoch = 2
    DefaultBudget().on_fit_start(every_other, None)
    assert every_other.check_val_every_n_epoch == 2  # the user's cadence is kept


def test_seeded_order_swaps_a_shuffling_sampler_and_leaves_an_ordered_one() -> None:
    for shuffle, expected in ((True, EpochSeededSampler), (False, SequentialSampler)):
        loader = DataLoader(list(range(10)), batch_size=2, shuffle=shuffle)
        SeededOrder().on_train_start(SimpleNamespace(train_dataloader=loader), None)
        assert isinstance(loader.batch_sampler.sampler, expected)


def test_non_finite_guard_stops_on_a_nan_loss_or_an_infinite_gradient(tmp_path: Path) -> None:
    saved: list[Path] = []
    trainer = SimpleNamespace(
        default_root_dir=tmp_path, current_epoch=2, global_step=9, save_checkpoint=saved.append
    )
    guard = NonFiniteGuard()
    guard.on_train_batch_start(trainer, None, SimpleNamespace(image_path=["a.png", "b.png"]), 0)
    guard.on_before_backward(trainer, None, torch.tensor(1.0))  # finite: nothing happens
    with pytest.raises(
        FloatingPointError, match=r"epoch 2, step 9: the training loss is nan for images \['a.png', 'b.png'\]"
    ):
        guard.on_before_backward(trainer, None, torch.tensor(float("nan")))
    parameter = torch.nn.Parameter(torch.zeros(2))
    parameter.grad = torch.tensor([0.0, float("inf")])
    with pytest.raises(FloatingPointError, match="a gradient is not finite"):
        guard.on_before_optimizer_step(trainer, torch.nn.ParameterList([parameter]), None)
    assert saved == [tmp_path / "last_good_weights.ckpt"] * 2


@pytest.mark.parametrize("fails", [False, True])
def test_view_feature_cache_gives_the_model_its_views_and_the_datamodule_its_set_back(
    tiny_dataset: Path, tmp_path: Path, fails: bool
) -> None:
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    datamodule.setup()
    train_data = datamodule.train_data
    trainer = SimpleNamespace(
        datamodule=datamodule, default_root_dir=tmp_path, global_rank=0, current_epoch=0
    )
    model = SimpleNamespace(view_features=None)
    callback = ViewFeatureCache("auto", num_views=4, affine_views=0.0, cache_bytes=2**20)
    callback.wrap_training_set(trainer, model)  # what FastFlow.setup calls before a fit
    assert model.view_features.views.augmentation == PAPER_AUGMENTATION  # brick allows the paper's views
    assert (
        isinstance(datamodule.train_data, CachedViewsDataset) and datamodule.train_data.dataset is train_data
    )
    callback.on_train_epoch_start(trainer, model)
    if fails:
        callback.on_exception(trainer, model, RuntimeError("the fit failed"))
    else:
        callback.on_fit_end(trainer, model)
    assert model.view_features is None and datamodule.train_data is train_data
    assert not (tmp_path / "feature_cache" / "rank0").exists() or not any(
        (tmp_path / "feature_cache" / "rank0").iterdir()
    )
    with pytest.raises(ValueError, match="augmentation_views must be at least 1"):
        ViewFeatureCache(num_views=0)
    with pytest.raises(ValueError, match="augmentation='flips' is not one of"):
        ViewFeatureCache("flips")


class _SeenPaths(Callback):
    """Records the image paths of every training batch."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        del trainer, pl_module, batch_idx
        self.paths += list(batch.image_path)


@pytest.mark.slow
def test_the_training_callbacks_give_the_same_batches_in_any_order(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SelfValidation holds images out and ViewFeatureCache wraps the training set (and caches the
    views' features by image): whatever the order FastFlow's training callbacks are attached in, the
    fit reads the same batches and trains the same weights."""
    orders = {
        "as_attached": lambda callbacks: callbacks,
        "reversed": lambda callbacks: callbacks[::-1],
        "self_validation_last": lambda callbacks: sorted(
            callbacks, key=lambda c: isinstance(c, SelfValidation)
        ),
    }
    seen, weights = {}, {}
    for name, reorder in orders.items():
        seed_everything(0)
        model = FastFlow(input_size=64, flow_steps=2, weights="random", self_validation=2)
        own = FastFlow.configure_callbacks
        monkeypatch.setattr(
            FastFlow, "configure_callbacks", lambda self, own=own, reorder=reorder: reorder(own(self))
        )
        recorder = _SeenPaths()
        datamodule = MVTec(
            root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
        )
        Engine(default_root_dir=tmp_path / name, logger=False, max_epochs=6, callbacks=[recorder]).fit(
            model, datamodule=datamodule
        )
        monkeypatch.setattr(FastFlow, "configure_callbacks", own)
        seen[name] = recorder.paths
        weights[name] = {key: value.clone() for key, value in model.model.flows.state_dict().items()}
        assert len(set(recorder.paths)) == 12 - 2  # the held-out images are never trained on
    assert seen["reversed"] == seen["as_attached"] == seen["self_validation_last"]
    for name in ("reversed", "self_validation_last"):
        for key, value in weights["as_attached"].items():
            assert torch.equal(weights[name][key], value), (name, key)
