"""What a report says about its run: the model's settings, its budget, its thresholds, the machine."""

from anomalib.models.components import AnomalibModule

from ..hardware import describe_cpu
from ..provenance import versions

SETTINGS = ("backbone", "layers", "input_size", "flow_steps", "conv3x3_only", "hidden_ratio", "smoothing_sigma",
            "feature_pooling", "augmentation", "affine_views", "lr", "lr_schedule", "self_validation")  # fmt: skip


def thresholds(model: AnomalibModule) -> dict[str, float]:
    """The post-processor's raw image and pixel thresholds, as the page's metrics table shows them."""
    post = model.post_processor
    return {"image_threshold": float(post.image_threshold), "pixel_threshold": float(post.pixel_threshold)}


def describe_run(model: AnomalibModule, epochs: int | None, steps: int | None, source: str) -> dict[str, str]:
    """The page's "Run" list: model and settings, budget, where the thresholds came from, CPU, versions.

    Args:
        model: The trained model (its hyperparameters and post-processor).
        epochs: Epochs it was trained for (None: unknown).
        steps: Optimizer steps it was trained for (None: unknown).
        source: Where the model came from (a checkpoint path, or the run that trained it).
    """
    hparams = dict(model.hparams)
    settings = ", ".join(
        f"{name}={hparams[name]}" for name in SETTINGS if name in hparams and hparams[name] is not None
    )
    held_out = hparams.get("self_validation", 0)
    threshold_source = (
        f"fitted on {held_out} held-out normal training images (self-validation: the highest held-out score)"
        if held_out
        else (
            "anomalib's F1-adaptive thresholds on the validation split "
            "(the test split unless the datamodule sets one apart)"
        )
    )

    return {
        "model": f"{type(model).__name__} from {source}",
        "settings": settings or "the model's defaults",
        "budget": "unknown" if epochs is None else f"{epochs} epochs, {steps} optimizer steps",
        "thresholds": f"{threshold_source}; raw values per category under Metrics, 0.5 after anomalib's normalisation",
        "CPU": describe_cpu(),
        "versions": versions(),
    }
