"""Options removed in 0.3.0: a 0.2 checkpoint that used their defaults loads as it was; one that did not
loads or stops with one line saying what to do; the renamed ones are translated."""

import warnings
from pathlib import Path

import lightning
import pytest
import torch

from anomalib_fastflow import FastFlow

OLD_DEFAULTS = {  # what 0.2.0 saved for options 0.3.0 no longer has
    "likelihood": "probability",
    "fusion": "mean",
    "top_k_fraction": 0.0,
    "norm_affine": "position",
    "keep_best_epoch": False,
    "scale_lr_to_budget": True,
    "warmup_fraction": 0.1,
    "weight_decay": 1e-5,
    "cache_features": True,
    "affine_augmentation": 0.0,
    "affine_scale": 1.0,
}


def _old_checkpoint(path: Path, **changed: object) -> tuple[Path, FastFlow]:
    """A checkpoint as 0.2.0 wrote it: its options in the hyperparameters, a plain PostProcessor's state
    (an image threshold of 0.5 and no held-out one)."""
    model = FastFlow(input_size=64, flow_steps=2)
    hparams = {key: value for key, value in model.hparams.items() if key != "affine_views"}
    state_dict = {key: value for key, value in model.state_dict().items() if "held_out" not in key}
    state_dict["post_processor._image_threshold"] = torch.tensor(0.5)
    checkpoint = {
        "state_dict": state_dict,
        "hyper_parameters": {**hparams, **OLD_DEFAULTS, **changed},
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(checkpoint, path)
    return path, model


def test_an_old_checkpoint_with_the_defaults_loads_silently_with_its_weights_and_thresholds(
    tmp_path: Path,
) -> None:
    path, saved = _old_checkpoint(tmp_path / "old.ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded = FastFlow.from_checkpoint(path)
    assert not set(OLD_DEFAULTS) & set(loaded.hparams)
    assert float(loaded.post_processor.image_threshold) == 0.5
    for key, value in saved.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)


@pytest.mark.parametrize(
    ("option", "value"),
    [("likelihood", "log"), ("fusion", "max"), ("top_k_fraction", 0.01), ("norm_affine", "channel")],
)
def test_an_option_that_changed_the_maps_stops_the_load_with_what_to_do(
    tmp_path: Path, option: str, value: object
) -> None:
    path, _ = _old_checkpoint(tmp_path / "old.ckpt", **{option: value})
    expected = (
        rf"{option}={value!r} was removed in 0\.3\.0 .*drop it, "
        r"or use the release that has it: pip install 'anomalib-fastflow<0\.3'"
    )
    with pytest.raises(ValueError, match=expected):
        FastFlow.from_checkpoint(path)
    with pytest.raises(ValueError, match=expected):
        FastFlow(input_size=64, flow_steps=2, **{option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("keep_best_epoch", True),
        ("scale_lr_to_budget", False),
        ("warmup_fraction", 0.3),
        ("weight_decay", 0.0),
    ],
)
def test_a_training_only_option_loads_with_one_line_saying_it_is_ignored(
    tmp_path: Path, option: str, value: object
) -> None:
    path, _ = _old_checkpoint(tmp_path / "old.ckpt", **{option: value})
    with pytest.warns(
        UserWarning, match=rf"{option}={value!r} was removed in 0\.3\.0 .* and is ignored"
    ) as said:
        loaded = FastFlow.from_checkpoint(path)
    assert all("\n" not in str(warning.message) for warning in said)
    assert option not in loaded.hparams


def test_renamed_options_are_translated(tmp_path: Path) -> None:
    path, _ = _old_checkpoint(
        tmp_path / "old.ckpt", affine_augmentation=1.0, affine_scale=0.25, cache_features=False
    )
    loaded = FastFlow.from_checkpoint(path)
    assert (loaded.hparams.affine_views, loaded.hparams.cache_memory_gb) == (0.25, 0.0)
    assert loaded.view_cache.affine_views == 0.25 and loaded.view_cache.cache_bytes is None
    with pytest.warns(
        UserWarning, match=r"affine_augmentation=0\.5 was removed in 0\.3\.0; .* affine_views=1\.0"
    ):
        assert FastFlow(input_size=64, flow_steps=2, affine_augmentation=0.5).hparams.affine_views == 1.0


def test_an_argument_fastflow_never_had_is_refused() -> None:
    with pytest.raises(TypeError, match=r"unexpected arguments \['backbones'\]"):
        FastFlow(backbones="resnet18")


def test_fastflow_has_at_most_sixteen_arguments_of_its_own() -> None:
    """anomalib's four components aside, and the catch for removed options."""
    import inspect

    own = [
        name for name, parameter in inspect.signature(FastFlow).parameters.items()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        and name not in {"pre_processor", "post_processor", "evaluator", "visualizer"}
    ]  # fmt: skip
    assert len(own) <= 16, own
