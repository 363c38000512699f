"""FastFlow's speed on the device at hand, beside its peers, in one run: the GPU story (``docs/gpu.md``).

For ours on each backbone and anomalib's Fastflow on the peer backbone, every inference path
(``device_paths.PATHS``): eager fp32, autocast (fp16 on CUDA, bf16 on a CPU with bf16 kernels), ``torch.compile``,
the network captured whole in a CUDA graph (``export.cuda_graphs``), ONNX Runtime's CUDA and
TensorRT execution providers and a TensorRT engine (fp16); for PatchCore (a bank of
``patchcore_bank`` patches, as 200 training images leave after its 10% coreset) and Patchflow,
eager fp32. Each path: batch-1 latency (median and p99 of ``repeats`` calls after ``warmup``,
CUDA events on a GPU, the image already on the device, map and score included), throughput at
``throughput_batch`` and the largest anomaly-map difference to eager fp32. A path that cannot run
here is a row with its reason. Training: seconds per epoch and peak memory, ours and anomalib's
Fastflow, on ``training_images`` images. Weights are random (speed does not depend on their values,
and GPU machines are offline); the map differences are on random images.

``run_device_speed`` writes ``device_speed.md`` and ``device_speed.json`` under ``output``.
"""

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import torch
from anomalib.models.components import AnomalibModule

from ..backbones import OFFLINE_BACKBONE, RANDOM_WEIGHTS
from ..errors import require_at_least
from ..lightning_model import FastFlow
from ..loss import negative_log_likelihood
from ..provenance import provenance
from .baselines import anomalib_fastflow, anomalib_patchcore, anomalib_patchflow
from .device_paths import FLOW_MODELS, inference_paths, input_shape


@dataclass
class DeviceSpeedConfig:
    """What ``run_device_speed`` measures.

    Attributes:
        backbones: Our FastFlow's backbones (presets).
        peer_backbone: Backbone of anomalib's Fastflow, PatchCore and Patchflow.
        peers: Which of anomalib's models run beside ours.
        repeats: Timed batch-1 calls per path (median and p99 of them).
        warmup: Untimed calls before.
        throughput_batch: Batch size of the throughput figure.
        input_size: Input side for every model (None: each preset's); small sizes smoke-test.
        training_images: Images of the training-speed rows (random, one epoch of them per round).
        training_epochs: Epochs timed per training row (the first is dropped when more than one).
        patchcore_bank: Patches in PatchCore's memory bank.
        output: Folder of ``device_speed.md`` and ``device_speed.json``.
    """

    backbones: list[str] = field(default_factory=lambda: ["resnet18", "wide_resnet50_2", OFFLINE_BACKBONE])
    peer_backbone: str = "resnet18"
    peers: list[str] = field(
        default_factory=lambda: ["anomalib_fastflow", "anomalib_patchcore", "anomalib_patchflow"]
    )
    repeats: int = 300
    warmup: int = 20
    throughput_batch: int = 32
    input_size: int | None = None
    training_images: int = 200
    training_epochs: int = 3
    patchcore_bank: int = 20480
    output: Path = Path("results/device_speed")


@dataclass
class SpeedRow:
    """One model, backbone and inference path: ``status`` ``ok`` with its figures, or ``skipped``
    or ``failed`` with ``reason``."""

    model: str
    backbone: str
    path: str
    status: str
    batch1_median_ms: float | None = None
    batch1_p99_ms: float | None = None
    throughput_images_per_s: float | None = None
    max_map_difference: float | None = None
    reason: str = ""


@dataclass
class TrainingRow:
    """Seconds per training epoch and peak memory (GPU memory on a GPU, else process RSS growth)."""

    model: str
    backbone: str
    images: int
    seconds_per_epoch: float
    peak_memory_mb: float


def device() -> torch.device:
    """The CUDA device where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def time_calls(call: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls after ``warmup`` (CUDA events on a GPU)."""
    for _ in range(warmup):
        call()
    times = []
    cuda = torch.cuda.is_available()
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            call()
            times.append(1000 * (time.perf_counter() - begin))
    return times


def build_model(name: str, backbone: str, config: DeviceSpeedConfig) -> AnomalibModule:
    """A model of ``name`` on ``backbone`` with random weights, in eval mode on ``device()``."""
    size = {"input_size": config.input_size} if config.input_size else {}
    if name == "fastflow":
        model = FastFlow(backbone=backbone, weights=RANDOM_WEIGHTS, **size)
    else:
        builders = {"anomalib_fastflow": anomalib_fastflow, "anomalib_patchcore": anomalib_patchcore,
                    "anomalib_patchflow": anomalib_patchflow}  # fmt: skip
        model = builders[name](backbone, RANDOM_WEIGHTS)
        if name == "anomalib_patchcore":
            width = sum(model.model.feature_extractor.out_dims)
            model.model.memory_bank = torch.randn(config.patchcore_bank, width)
    return model.eval().to(device())


def measure_model(
    model: AnomalibModule, name: str, backbone: str, config: DeviceSpeedConfig, workdir: Path
) -> list[SpeedRow]:
    """Every path of one model: a row each."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    one = torch.rand(input_shape(model, 1), generator=generator).to(device())
    many = torch.rand(input_shape(model, config.throughput_batch), generator=generator).to(device())
    with torch.inference_mode():
        reference = model.model(one).anomaly_map.float().cpu()
    for path, factory in inference_paths(model, name, workdir).items():
        if isinstance(factory, str):
            rows.append(SpeedRow(name, backbone, path, "skipped", reason=factory))
            continue
        try:
            with torch.inference_mode():
                single, batched = factory(1), factory(config.throughput_batch)
                difference = (single(one).anomaly_map.float().cpu() - reference).abs().max().item()
                times = time_calls(lambda: single(one), config.repeats, config.warmup)
                batch_times = time_calls(
                    lambda: batched(many), max(5, config.repeats // 20), config.warmup // 4 + 1
                )
        except Exception as error:  # a path that fails here is a row with its reason, not a lost run
            rows.append(
                SpeedRow(name, backbone, path, "failed", reason=f"{type(error).__name__}: {error}"[:300])
            )
            continue
        rows.append(SpeedRow(
            name, backbone, path, "ok",
            batch1_median_ms=statistics.median(times),
            batch1_p99_ms=statistics.quantiles(times, n=100)[98] if len(times) >= 2 else times[0],
            throughput_images_per_s=1000 * config.throughput_batch / statistics.median(batch_times),
            max_map_difference=difference,
        ))  # fmt: skip
    return rows


def measure_training(name: str, backbone: str, config: DeviceSpeedConfig) -> TrainingRow:
    """Seconds per epoch (median of the epochs after the first) and peak memory of one model's training
    steps on ``training_images`` random images in batches of 8: forward, its own loss, backward,
    Adam. The frozen backbone stays in eval mode; ours runs without its feature cache (what the
    cache saves on top: ``docs/compare_training.md``)."""
    model = build_model(name, backbone, config).train()
    model.model.feature_extractor.eval()
    loss_of = negative_log_likelihood if name == "fastflow" else model.loss
    images = torch.rand(config.training_images, 3, *tuple(model.input_size))
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=1e-4)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    epochs = []
    for _ in range(config.training_epochs):
        start = time.perf_counter()
        for batch in images.split(8):
            hidden, jacobians = model.model(batch.to(device()))
            loss = loss_of(hidden, jacobians)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        epochs.append(time.perf_counter() - start)
    steady = epochs[1:] or epochs
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    return TrainingRow(name, backbone, config.training_images, statistics.median(steady), peak)


def run_device_speed(config: DeviceSpeedConfig | None = None) -> str:
    """Measure every row, write ``device_speed.md`` and ``.json`` under ``config.output``, return the table.

    Raises:
        InputError: ``repeats``, ``throughput_batch``, ``training_images`` or ``training_epochs`` below 1.
    """
    config = config or DeviceSpeedConfig()
    for name in ("repeats", "throughput_batch", "training_images", "training_epochs"):
        require_at_least(name, getattr(config, name), 1, "a count of the run")
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    jobs = [("fastflow", backbone) for backbone in config.backbones]
    jobs += [(peer, config.peer_backbone) for peer in config.peers]
    rows: list[SpeedRow] = []
    for name, backbone in jobs:
        rows += measure_model(build_model(name, backbone, config), name, backbone, config, output / "work")
    training = [measure_training(name, config.peer_backbone, config) for name in FLOW_MODELS]
    environment = describe_device()
    table = format_device_speed(rows, training, environment)
    (output / "device_speed.md").write_text(table)
    (output / "device_speed.json").write_text(json.dumps({
        "environment": environment, "config": {**asdict(config), "output": str(config.output)},
        "inference": [asdict(row) for row in rows], "training": [asdict(row) for row in training],
    }, indent=2))  # fmt: skip
    return table


def describe_device() -> dict[str, str]:
    """The device, driver, CUDA and the provenance line (command, date, CPU, package versions)."""
    environment = {"date": date.today().isoformat(), "provenance": provenance(), "torch": torch.__version__}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        environment |= {"device": properties.name, "cuda": str(torch.version.cuda),
                        "driver": _nvidia_driver(), "memory_gb": f"{properties.total_memory / 2**30:.0f}"}  # fmt: skip
    else:
        environment["device"] = "CPU (no CUDA device)"
    return environment


def _nvidia_driver() -> str:
    try:
        import subprocess

        return subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi did not answer)"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_device_speed(
    rows: list[SpeedRow], training: list[TrainingRow], environment: dict[str, str]
) -> str:
    """The Markdown report: environment, inference table, training table."""
    lines = [
        f"# Inference and training speed on {environment['device']} ({environment['date']})",
        "",
        environment["provenance"],
        "",
        " | ".join(
            f"{key}: {value}" for key, value in environment.items() if key not in {"provenance", "date"}
        ),
        "",
        "| model | backbone | path | batch 1 median ms | batch 1 p99 ms | images/s (batch) "
        "| max map diff to eager fp32 | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        status = row.status if row.status == "ok" else f"{row.status}: {row.reason}"
        lines.append(
            f"| {row.model} | {row.backbone} | {row.path} | {_number(row.batch1_median_ms, 2)} | "
            f"{_number(row.batch1_p99_ms, 2)} | {_number(row.throughput_images_per_s, 1)} | "
            f"{_number(row.max_map_difference, 5)} | {status} |"
        )
    lines += [
        "",
        "| model | backbone | training images | seconds per epoch | peak GPU memory MB |",
        "|---|---|---|---|---|",
    ]
    for row in training:
        memory = _number(row.peak_memory_mb, 0)
        lines.append(
            f"| {row.model} | {row.backbone} | {row.images} | {row.seconds_per_epoch:.3f} | {memory} |"
        )
    return "\n".join(lines) + "\n"
