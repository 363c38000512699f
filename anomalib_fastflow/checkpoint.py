"""What a FastFlow checkpoint must hold to load: its network, not its metrics.

A checkpoint carries the evaluator's and visualizer's state too (e.g. AUPRO's ``fpr_limit``
buffer, when the benchmark grid trained with AUPRO); a model built with other metrics could not
load it in test, predict or export. ``take_own_metric_state`` replaces that state by the loading
model's own, ``add_missing_post_processor_state`` lets a checkpoint saved before (or without)
``FastFlowPostProcessor`` load into a model with (or without) it, ``check_network_fits`` refuses a
checkpoint of another network with the settings that differ, and ``warn_if_scoring_differs`` warns
when the same network scores other maps than the ones the checkpoint's normalisation statistics
were computed on. ``read_fastflow_checkpoint`` reads a file once, weights-only, and refuses a
missing file, a file that is no checkpoint or another model's checkpoint before Lightning tries to
build a model from it.
"""

import io
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from anomalib.utils.serialization import anomalib_safe_globals
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.utilities import rank_zero_warn

from .errors import InputError, MissingInputError

METRIC_COMPONENTS = ("evaluator", "visualizer")
NETWORK_SETTINGS = ("backbone", "layers", "input_size", "flow_steps", "conv3x3_only", "hidden_ratio")
SCORING_SETTINGS = ("smoothing_sigma",)  # feature_pooling is taken from the checkpoint (FastFlow)
TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, or a legacy pickle
OWN_THRESHOLDS = (  # FastFlowPostProcessor's own buffers
    "post_processor.held_out_image_threshold",
    "post_processor.validation_image_threshold",
)


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint read from disk once: its bytes, for Lightning to build the model from, and what
    they hold (read weights-only: a pickle's code never runs)."""

    path: Path
    data: bytes
    contents: dict[str, Any]

    @property
    def epochs(self) -> int:
        """Epochs the checkpoint's model was trained for."""
        return int(self.contents.get("epoch", -1)) + 1

    @property
    def steps(self) -> int:
        """Optimizer steps the checkpoint's model was trained for."""
        return int(self.contents.get("global_step", 0))

    def stream(self) -> io.BytesIO:
        """The checkpoint's bytes as a file object (for ``load_from_checkpoint``), without a second read."""
        return io.BytesIO(self.data)


def read_fastflow_checkpoint(path: str | Path, safe_globals: Sequence[object]) -> CheckpointFile:
    """Read the file at ``path`` once and refuse anything but a FastFlow checkpoint.

    The contents are unpickled with ``weights_only=True`` and anomalib's safe globals (plus
    ``safe_globals``), as anomalib's own loading does: a crafted file cannot run code.

    Raises:
        MissingInputError: No file at ``path``.
        InputError: The file is not a PyTorch checkpoint, holds objects a weights-only load refuses,
            or holds no flow weights (e.g. another anomalib model's checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"Checkpoint not found: {path}"
        raise MissingInputError(msg)
    data = path.read_bytes()
    if not data.startswith(TORCH_SAVE_MAGIC):
        msg = f"{path} is not a PyTorch checkpoint."
        raise InputError(msg)
    try:
        with anomalib_safe_globals(extra=list(safe_globals)):
            contents = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        what = f"global {refused.group(1)}" if refused else "not tensors and plain values"
        msg = (
            f"{path} holds objects a weights-only load refuses ({what}), so it is not loaded: "
            "FastFlow checkpoints that Lightning saves hold none."
        )
        raise InputError(msg) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        msg = f"{path} is not a PyTorch checkpoint ({type(error).__name__}: {str(error).splitlines()[0]})."
        raise InputError(msg) from None
    state_dict = contents.get("state_dict", {}) if isinstance(contents, dict) else {}
    if not any(key.startswith("model.flows.") for key in state_dict):
        msg = f"{path} is not a FastFlow checkpoint (it holds no flow weights of anomalib_fastflow.FastFlow)."
        raise InputError(msg)
    return CheckpointFile(path, data, contents)


def take_own_metric_state(checkpoint: dict[str, Any], module: LightningModule) -> None:
    """Put ``module``'s own evaluator and visualizer state into ``checkpoint``, in place of the saved one.

    The state is kept twice, in the module's ``state_dict`` and as callback state; both are replaced.
    """
    state_dict, own = checkpoint.get("state_dict", {}), module.state_dict()
    for name in METRIC_COMPONENTS:
        for key in [key for key in state_dict if key.startswith(f"{name}.")]:
            del state_dict[key]
        state_dict.update({key: value for key, value in own.items() if key.startswith(f"{name}.")})
        component, callbacks = getattr(module, name, None), checkpoint.get("callbacks", {})
        if isinstance(component, Callback) and component.state_key in callbacks:
            callbacks[component.state_key] = component.state_dict()


def check_network_fits(checkpoint: dict[str, Any], module: LightningModule) -> None:
    """Raise ``ValueError`` naming both models' settings when the checkpoint's network tensors differ."""
    if _network_shapes(checkpoint.get("state_dict", {})) == _network_shapes(module.state_dict()):
        return
    saved = checkpoint.get("hyper_parameters", {})
    msg = (
        "The checkpoint does not fit this FastFlow model: it was trained with "
        + _settings(saved, NETWORK_SETTINGS)
        + "; this model has "
        + _settings(module.hparams, NETWORK_SETTINGS)
        + ". Build the model with the checkpoint's settings."
    )
    raise ValueError(msg)


def warn_if_scoring_differs(checkpoint: dict[str, Any], module: LightningModule) -> None:
    """Warn, naming the settings, when ``module`` scores its maps otherwise than the checkpoint's model.

    The checkpoint's post-processor holds the min, max and thresholds of the maps it was validated
    on; maps of another smoothing lie elsewhere, and normalised with
    those statistics they can clamp to 0 or 1 alike. A validation run recomputes them.
    """
    saved = checkpoint.get("hyper_parameters", {})
    differing = [key for key in SCORING_SETTINGS if key in saved and saved[key] != module.hparams.get(key)]
    if not differing:
        return
    rank_zero_warn(
        "The checkpoint's model scored its maps with "
        + _settings(saved, differing)
        + "; this model uses "
        + _settings(module.hparams, differing)
        + ". The normalisation statistics and thresholds in the checkpoint were computed on the other "
        "maps and may clamp these scores: validate first (Engine.validate) to recompute them, or "
        "build the model with the checkpoint's settings."
    )


def add_missing_post_processor_state(checkpoint: dict[str, Any], module: LightningModule) -> None:
    """Give ``checkpoint`` the thresholds of ``FastFlowPostProcessor`` that ``module`` has and it lacks
    (unset: NaN, so anomalib's saved threshold applies as before), and drop those ``module`` lacks
    (a post-processor of the user's own)."""
    state_dict, own = checkpoint.get("state_dict", {}), module.state_dict()
    for key in OWN_THRESHOLDS:
        if key in own and key not in state_dict:
            state_dict[key] = torch.full_like(own[key], float("nan"))
        if key not in own:
            state_dict.pop(key, None)


def _settings(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``key=value, ...`` for ``keys``, as the messages above name settings."""
    return ", ".join(f"{key}={values.get(key)!r}" for key in keys)


def _network_shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of the network (``model.*``), by name."""
    return {key: tuple(tensor.shape) for key, tensor in state_dict.items() if key.startswith("model.")}
