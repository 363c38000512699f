"""FastFlow options removed in 0.3.0, and what a call or an older checkpoint that names one is told.

``FastFlow`` takes them as ``**removed`` so that a checkpoint saved by 0.2 still builds a model:
an option at its old default is dropped in silence, a renamed one is translated, a training-only
one is ignored with a warning (a trained model's weights do not depend on it), and one that changed
the anomaly maps of a trained model is refused with what to do.
"""

from dataclasses import dataclass
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

REMOVED_IN = "0.3.0"
OLD_RELEASE = "pip install 'anomalib-fastflow<0.3'"


@dataclass(frozen=True)
class RemovedOption:
    """An option 0.2 had: its default, why it went, and whether it changed a trained model's maps."""

    default: object
    why: str
    changes_maps: bool


REMOVED = {
    "likelihood": RemovedOption("probability", "no gain measured on the demo or real defects", True),
    "fusion": RemovedOption("mean", "no gain measured on the demo or real defects", True),
    "top_k_fraction": RemovedOption(0.0, "no gain measured on the demo or real defects", True),
    "norm_affine": RemovedOption("position", "no gain on top of pose views", True),
    "keep_best_epoch": RemovedOption(False, "the kept epoch was no better than the last", False),
    "scale_lr_to_budget": RemovedOption(
        True, "it only switched a fix off; the peak always scales now", False
    ),
    "warmup_fraction": RemovedOption(0.1, "never measured at another value", False),
    "weight_decay": RemovedOption(1e-5, "the paper's value, never measured at another", False),
}
# translated: cache_features=False is cache_memory_gb=0; affine_augmentation=1, affine_scale=s is affine_views=s
RENAMED = ("cache_features", "affine_augmentation", "affine_scale")


def take_removed(removed: dict[str, Any], affine_views: float, cache_memory_gb: float) -> tuple[float, float]:
    """Empty ``removed`` (``FastFlow``'s ``**removed``) and return ``affine_views`` and ``cache_memory_gb``
    with the renamed options translated.

    Raises:
        TypeError: An argument FastFlow never had.
        ValueError: A removed option that changed the maps, at another value than its old default.
    """
    options = dict(removed)
    removed.clear()  # what Lightning saves as hyperparameters holds none of them
    unknown = sorted(set(options) - set(REMOVED) - set(RENAMED))
    if unknown:
        msg = f"FastFlow got unexpected arguments {unknown}."
        raise TypeError(msg)
    if options.pop("cache_features", True) is False:
        cache_memory_gb = 0.0
    probability, scale = options.pop("affine_augmentation", 0.0), options.pop("affine_scale", 1.0)
    if probability > 0:
        affine_views = scale
        if probability < 1:
            rank_zero_warn(
                f"FastFlow: affine_augmentation={probability} was removed in {REMOVED_IN}; every view but the "
                f"image now gets the affine ranges: affine_views={scale} (give affine_views instead)."
            )
    for name, value in options.items():
        option = REMOVED[name]
        if value == option.default:
            continue
        message = f"FastFlow: {name}={value!r} was removed in {REMOVED_IN} ({option.why})"
        if option.changes_maps:
            msg = f"{message}; drop it, or use the release that has it: {OLD_RELEASE}."
            raise ValueError(msg)
        rank_zero_warn(
            f"{message} and is ignored: it only changed training; drop it, or train with {OLD_RELEASE}."
        )
    return affine_views, cache_memory_gb
