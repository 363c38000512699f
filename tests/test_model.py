"""The anomalib module and the torch model: any input size, save/load, inverse, checkpoint checks."""

import io
import itertools
import warnings
from pathlib import Path

import pytest
import torch
from anomalib.data import InferenceBatch
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from anomalib.metrics import AUPRO, AUROC, Evaluator
from lightning.pytorch import Callback, Trainer

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.errors import InputError
from anomalib_fastflow.loss import negative_log_likelihood


def _engine(tmp_path: Path, **kwargs: object) -> Engine:
    return Engine(default_root_dir=tmp_path, logger=False, **kwargs)


@pytest.mark.slow
def test_odd_input_size_trains_and_maps_at_input_size(tiny_dataset: Path, tmp_path: Path) -> None:
    model = FastFlow(input_size=250, flow_steps=2)
    assert [shape[1:] for shape in model.model.feature_shapes] == [(63, 63), (32, 32), (16, 16)]
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    before = [parameter.clone() for parameter in model.model.flows.parameters()]
    _engine(tmp_path, max_epochs=1, limit_val_batches=0).fit(model, datamodule=datamodule)
    after = list(model.model.flows.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    model.eval()
    with torch.no_grad():
        output = model.model(torch.randn(2, 3, 250, 250))
    assert isinstance(output, InferenceBatch)
    assert output.anomaly_map.shape == (2, 1, 250, 250)
    assert output.pred_score.shape == (2,)
    assert torch.isfinite(output.anomaly_map).all()


def test_whole_model_save_load_round_trip() -> None:
    torch.manual_seed(0)
    model = FastFlow(input_size=64, flow_steps=2).eval()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = model.model(images), loaded.model(images)
    torch.testing.assert_close(actual.anomaly_map, expected.anomaly_map, atol=0, rtol=0)
    torch.testing.assert_close(actual.pred_score, expected.pred_score, atol=0, rtol=0)


def test_inverse_flow_regenerates_features() -> None:
    """Paper Fig. 4: features come back from latents, and a local latent change stays local."""
    torch.manual_seed(0)
    model = FastFlow(input_size=96, flow_steps=4).model.eval()
    with torch.no_grad():
        features = model.feature_extractor(torch.randn(1, 3, 96, 96))
        latents, _ = model.encode(features)
        regenerated = model.decode(latents)
        for feature, norm, generated in zip(
            model.patch_features(features), model.norms, regenerated, strict=True
        ):
            torch.testing.assert_close(generated, norm(feature), atol=1e-4, rtol=1e-4)
        polluted = [z.clone() for z in latents]
        polluted[0][..., :4, :4] += 3.0
        changed = (model.decode(polluted)[0] - regenerated[0]).abs().amax(dim=1)[0]
    assert changed[:4, :4].min() > 0
    assert changed[-8:, -8:].max() < 1e-5  # far from the disturbance, nothing moved


def test_loss_is_the_negative_log_likelihood() -> None:
    z = [torch.zeros(2, 3, 4, 4), torch.ones(2, 1, 2, 2)]
    log_jacobians = [torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])]
    assert negative_log_likelihood(z, log_jacobians).item() == pytest.approx(-2.0 + 0.5 * 4)


def test_fused_adam_takes_the_same_steps_as_torch_default_adam() -> None:
    torch.manual_seed(0)
    model = FastFlow(input_size=64, flow_steps=2, lr_schedule="constant")
    optimizer = model.configure_optimizers()
    assert optimizer.defaults["fused"] is True
    reference_model = FastFlow(input_size=64, flow_steps=2, lr_schedule="constant")
    reference_model.load_state_dict(model.state_dict())
    initial = {name: parameter.detach().clone() for name, parameter in model.model.named_parameters()}
    trainable = [parameter for parameter in reference_model.model.parameters() if parameter.requires_grad]
    reference = torch.optim.Adam(trainable, lr=model.hparams.lr, weight_decay=1e-5)  # the paper's
    features = model.model.feature_extractor(torch.randn(2, 3, 64, 64))
    for _ in range(3):
        for network, adam in ((model.model, optimizer), (reference_model.model, reference)):
            adam.zero_grad()
            negative_log_likelihood(*network.encode(features)).backward()
            adam.step()
    updated = dict(model.model.named_parameters())
    for name, reference_parameter in reference_model.model.named_parameters():
        torch.testing.assert_close(updated[name], reference_parameter, atol=1e-5, rtol=1e-4)
    assert all(not torch.equal(updated[name], initial[name]) for name in initial if name.startswith("flows."))


class _LearningRates(Callback):
    """Records the learning rate each training step runs with."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: Trainer, *args: object) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.slow
def test_one_cycle_with_a_one_step_warm_up_trains(tiny_dataset: Path, tmp_path: Path) -> None:
    """10 steps at the default warm-up share 0.1: torch's OneCycleLR alone divides by zero here."""
    rates = _LearningRates()
    model = FastFlow(input_size=64, flow_steps=2, lr=1e-3, lr_schedule="one_cycle")
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    _engine(tmp_path, max_steps=10, limit_val_batches=0, callbacks=[rates]).fit(model, datamodule=datamodule)
    assert len(rates.rates) == 10
    assert rates.rates[0] == pytest.approx(1e-3 / 25)  # OneCycleLR's initial rate, max_lr / div_factor
    assert rates.rates[1] == pytest.approx(1e-3, rel=0.05)  # warm-up done: decay from the peak
    assert all(later < earlier for earlier, later in itertools.pairwise(rates.rates[1:]))


def test_checkpoint_of_another_backbone_is_refused() -> None:
    other = FastFlow(backbone="resnet18", weights="random", input_size=64, flow_steps=2)
    checkpoint = {"state_dict": other.state_dict(), "hyper_parameters": dict(other.hparams)}
    model = FastFlow(input_size=64, flow_steps=2)
    with pytest.raises(
        ValueError, match=r"trained with backbone='resnet18'.*this model has backbone='tf_efficientnet_lite0'"
    ):
        model.on_load_checkpoint(checkpoint)


def test_smoothing_changes_the_map_not_the_image_score() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    plain = FastFlow(input_size=64, flow_steps=2, smoothing_sigma=0.0).model.eval()
    smoothed = FastFlow(input_size=64, flow_steps=2, smoothing_sigma=4.0).model.eval()
    smoothed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain_output, smoothed_output = plain(images), smoothed(images)
    assert torch.equal(plain_output.pred_score, smoothed_output.pred_score)
    assert smoothed_output.anomaly_map.shape == plain_output.anomaly_map.shape == (2, 1, 64, 64)
    assert (smoothed_output.anomaly_map - plain_output.anomaly_map).abs().max() > 1e-3
    with pytest.raises(ValueError, match="smoothing_sigma=-1"):
        FastFlow(smoothing_sigma=-1.0)


def test_input_size_must_agree_with_the_pre_processor() -> None:
    pre_processor = FastFlow.configure_pre_processor((128, 128))
    with pytest.raises(
        ValueError, match=r"input_size=\(64, 64\) disagrees with the pre-processor's \(128, 128\)"
    ):
        FastFlow(input_size=64, pre_processor=pre_processor)


def test_model_without_a_resizing_pre_processor_is_refused() -> None:
    with pytest.raises(ValueError, match="FastFlow needs a fixed input size"):
        FastFlow(pre_processor=False)


class _NaNAfter:
    """Training augmentation that passes ``count`` images through, then returns NaN images."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, image: torch.Tensor, *others: object) -> tuple:
        self.count -= 1
        return (image if self.count >= 0 else torch.full_like(image, float("nan")), *others)


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_last_good_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0,
        train_augmentations=_NaNAfter(count=8),
    )  # fmt: skip
    model = FastFlow(input_size=64, flow_steps=2)
    with pytest.raises(
        FloatingPointError, match=r"epoch 0, step 2: the training loss is nan .*last_good_weights.ckpt"
    ):
        _engine(tmp_path, max_epochs=1).fit(model, datamodule=datamodule)
    [checkpoint] = tmp_path.rglob("last_good_weights.ckpt")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 2  # the two good steps, not the failing one
    state = saved["state_dict"]
    flows = {key: value for key, value in state.items() if ".flows." in key and value.is_floating_point()}
    assert flows and all(torch.isfinite(value).all() for value in flows.values())
    reloaded = FastFlow(input_size=64, flow_steps=2)
    reloaded.load_state_dict(state)
    with torch.no_grad():
        assert torch.isfinite(reloaded.eval().model(torch.rand(1, 3, 64, 64)).anomaly_map).all()


def test_wide_resnet50_preset_matches_the_paper() -> None:
    """Table 6 feature sizes (64, 32, 16) and Table 5's 41.3 M flow parameters (3-1 subnets)."""
    model = FastFlow(backbone="wide_resnet50_2", weights="random").model
    assert [shape[1:] for shape in model.feature_shapes] == [(64, 64), (32, 32), (16, 16)]
    assert round(sum(parameter.numel() for parameter in model.flows.parameters()) / 1e6, 1) == 41.3


def test_deit_preset_takes_block_7_as_a_24x24_map() -> None:
    model = FastFlow(backbone="deit_base_distilled_patch16_384", weights="random").model
    assert model.feature_shapes == [(768, 24, 24)]
    assert len(model.feature_extractor.model.blocks) == 8


@pytest.mark.slow
def test_checkpoint_trained_with_another_evaluator_tests_predicts_and_exports(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    aupro = Evaluator(
        test_metrics=[
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_"),
        ]
    )
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    _engine(tmp_path, max_epochs=1).fit(FastFlow(flow_steps=2, evaluator=aupro), datamodule=datamodule)
    [checkpoint] = tmp_path.glob("FastFlow/MVTec/brick/v0/weights/lightning/model.ckpt")
    assert any(
        key.startswith("evaluator.") for key in torch.load(checkpoint, weights_only=False)["state_dict"]
    )

    [metrics] = _engine(tmp_path / "test").test(
        FastFlow(flow_steps=2), datamodule=datamodule, ckpt_path=checkpoint
    )
    assert 0 <= metrics["image_AUROC"] <= 1 and "pixel_AUPRO" not in metrics  # the new model's evaluator
    predictions = _engine(tmp_path / "predict").predict(
        FastFlow(flow_steps=2), datamodule=datamodule, ckpt_path=checkpoint
    )
    assert predictions and predictions[0].anomaly_map is not None
    assert FastFlow.from_checkpoint(checkpoint).hparams.flow_steps == 2  # anomalib-fastflow export's loader
    exported = _engine(tmp_path / "export").export(
        FastFlow(flow_steps=2), ExportType.TORCH, export_root=tmp_path / "export", ckpt_path=checkpoint
    )
    assert Path(exported).is_file()


def test_checkpoint_scored_otherwise_loads_with_a_warning_naming_the_settings() -> None:
    trained = FastFlow(input_size=64, flow_steps=2)
    checkpoint = {"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}
    with warnings.catch_warnings(record=True) as same_scoring:
        warnings.simplefilter("always")
        FastFlow(input_size=64, flow_steps=2).on_load_checkpoint(dict(checkpoint))
    assert not [warning for warning in same_scoring if "scored its maps" in str(warning.message)]
    model = FastFlow(input_size=64, flow_steps=2, smoothing_sigma=0.0)
    with pytest.warns(
        UserWarning, match=r"smoothing_sigma=4.0; this model uses smoothing_sigma=0.0"
    ) as other:
        model.on_load_checkpoint(checkpoint)
    assert any("validate first" in str(warning.message) for warning in other)


@pytest.mark.parametrize("saved_pooling", [1, 3, None], ids=["pooling_1", "pooling_3", "before_the_option"])
def test_a_checkpoint_scores_with_the_feature_pooling_its_flows_were_trained_on(
    saved_pooling: int | None,
) -> None:
    """Whatever the loading model was built with (and whatever the default is), the maps are those of
    the checkpoint's model; a checkpoint saved before ``feature_pooling`` existed pooled nothing."""
    torch.manual_seed(0)
    trained = FastFlow(
        input_size=64, flow_steps=2, weights="random", feature_pooling=saved_pooling or 1
    ).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = trained.model(images).anomaly_map
    hparams = {
        key: value for key, value in trained.hparams.items() if saved_pooling or key != "feature_pooling"
    }
    for built_with in (1, 3):
        checkpoint = {"state_dict": dict(trained.state_dict()), "hyper_parameters": dict(hparams)}
        model = FastFlow(input_size=64, flow_steps=2, weights="random", feature_pooling=built_with)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"])
        with torch.no_grad():
            torch.testing.assert_close(model.eval().model(images).anomaly_map, expected)
        assert model.hparams.feature_pooling == [saved_pooling or 1] * 3


def test_the_default_pooling_averages_every_stage_but_the_finest() -> None:
    """``feature_pooling=None``: stride 4 as the backbone gives it, strides 8 and 16 averaged over 3x3;
    the sides are what the model's hparams (and so its checkpoints) hold."""
    torch.manual_seed(0)
    model = FastFlow(input_size=64, flow_steps=2, weights="random").eval()
    assert model.model.patch_features.sides == (1, 3, 3) and model.hparams.feature_pooling == [1, 3, 3]
    features = [torch.rand(1, 4, 16, 16), torch.rand(1, 4, 8, 8), torch.rand(1, 4, 4, 4)]
    finest, middle, coarsest = model.model.patch_features(features)
    assert torch.allclose(coarsest, torch.nn.functional.avg_pool2d(features[2], 3, stride=1, padding=1))
    assert torch.equal(finest, features[0])
    expected = torch.nn.functional.avg_pool2d(features[1], 3, stride=1, padding=1)
    assert torch.allclose(middle, expected) and not torch.allclose(middle, features[1])
    assert FastFlow(
        input_size=64, flow_steps=2, weights="random", feature_pooling=[3, 3, 1]
    ).hparams.feature_pooling == [3, 3, 1]
    with pytest.raises(InputError, match=r"one side per stage \(3\)"):
        FastFlow(input_size=64, flow_steps=2, weights="random", feature_pooling=[1, 3])
    one_stage = FastFlow(input_size=64, flow_steps=2, weights="random", layers=[3])
    assert one_stage.model.patch_features.sides == (3,)
