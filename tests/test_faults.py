"""What a user gets wrong, and what they get back: one line naming the file or argument and exit 2,
nothing run, nothing lost (``docs/errors.md``). Every bad input is built here, at test time."""

import ast
import hashlib
import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.engine import Engine
from anomalib.post_processing import PostProcessor
from PIL import Image

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.checkpoint import read_fastflow_checkpoint
from anomalib_fastflow.cli import main
from anomalib_fastflow.data.checks import check_image_file
from anomalib_fastflow.errors import InputError
from anomalib_fastflow.post_processor import between_scores
from anomalib_fastflow.report import checkpoint_report
from anomalib_fastflow.report.staging import staged_folder

PACKAGE = Path(__file__).resolve().parents[1] / "anomalib_fastflow"


def _run(args: list[str], capsys) -> str:
    """Run the command, expect the user-error exit (2) and return its one line of stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anomalib-fastflow: "), lines
    return lines[0]


def _report(checkpoint: Path, images: Path, output: Path) -> list[str]:
    return ["report", "--ckpt_path", str(checkpoint), "--images", str(images), "--output", str(output)]


def _folder_demo(root: Path, categories: str, output: Path) -> list[str]:
    return [
        "demo",
        "--dataset",
        "Folder",
        "--root",
        str(root),
        "--categories",
        categories,
        "--output",
        str(output),
    ]


def _png(path: Path, size: int = 16, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def _category(root: Path, name: str = "parts") -> Path:
    """A minimal MVTec-AD-layout category: 2 train, 1 good and 1 defective test image with its mask."""
    folder = root / name
    for i in range(2):
        _png(folder / "train" / "good" / f"{i:03d}.png", value=100 + i)
    _png(folder / "test" / "good" / "000.png")
    _png(folder / "test" / "crack" / "000.png", value=200)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    (folder / "ground_truth" / "crack").mkdir(parents=True)
    Image.fromarray(mask).save(folder / "ground_truth" / "crack" / "000_mask.png")
    return folder


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` grey pixels and holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)))
    return path


class _Payload:
    """Runs code when unpickled (``Path.touch`` of a marker), as a crafted checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return Path.touch, (str(self.marker),)


# --- checkpoints -------------------------------------------------------------------------------


def test_a_crafted_checkpoint_never_runs_its_code(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {"model.flows.0.weight": torch.zeros(1)}, "payload": _Payload(marker)}, crafted)
    images = tmp_path / "new"
    _png(images / "a.png")
    line = _run(
        ["report", "--ckpt_path", str(crafted), "--images", str(images), "--output", str(tmp_path / "r")],
        capsys,
    )
    assert str(crafted) in line and "holds objects a weights-only load refuses (global " in line
    with pytest.raises(InputError, match="weights-only load refuses"):
        read_fastflow_checkpoint(crafted, FastFlow.checkpoint_safe_globals())
    assert not marker.exists()
    assert not (tmp_path / "r").exists()


def test_a_file_of_random_bytes_is_not_a_pytorch_checkpoint(tmp_path: Path, capsys) -> None:
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    images = tmp_path / "new"
    _png(images / "a.png")
    line = _run(
        ["report", "--ckpt_path", str(noise), "--images", str(images), "--output", str(tmp_path / "r")],
        capsys,
    )
    assert line == f"anomalib-fastflow: {noise} is not a PyTorch checkpoint."


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    """No code path unpickles a file with ``weights_only=False`` (or torch's default left implicit)."""
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in {
                "torch.load",
                "load_from_checkpoint",
            }:
                keywords = {keyword.arg: ast.unparse(keyword.value) for keyword in node.keywords}
                calls.append((path.name, node.lineno, keywords.get("weights_only")))
    assert calls and all(weights_only == "True" for *_, weights_only in calls), calls


# --- arguments -----------------------------------------------------------------------------------


def test_disturb_refuses_an_output_equal_to_or_inside_its_source_and_touches_nothing(
    tmp_path: Path, capsys
) -> None:
    root = tmp_path / "data"
    _category(root)
    before = _fingerprint(root)
    for output in (root, root / "disturbed", tmp_path):
        line = _run(
            ["disturb", "--root", str(root), "--output", str(output), "--categories", "[parts]"], capsys
        )
        assert f"output={output}" in line and "outside the source" in line
        assert _fingerprint(root) == before


def test_disturb_refuses_a_defective_image_without_its_mask_before_writing(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _category(root)
    (root / "parts" / "ground_truth" / "crack" / "000_mask.png").unlink()
    line = _run(
        ["disturb", "--root", str(root), "--output", str(tmp_path / "out"), "--categories", "[parts]"], capsys
    )
    assert str(root / "parts" / "test" / "crack" / "000.png") in line
    assert not (tmp_path / "out").exists()


def test_build_elpv_refuses_a_training_size_below_one(tmp_path: Path, capsys) -> None:
    line = _run(["build-elpv", "--root", str(tmp_path / "elpv"), "--train_sizes", "[-5]"], capsys)
    assert "train_sizes=[-5]" in line and "at least 1" in line
    assert not (tmp_path / "elpv").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--max_epochs", "0"], "max_epochs=0"), (["--batch_size", "0"], "batch_size=0")],
    ids=["max_epochs", "batch_size"],
)
def test_the_demo_refuses_a_budget_or_batch_of_zero_before_anything_runs(
    args: list[str], named: str, tmp_path: Path, capsys
) -> None:
    line = _run(["demo", "--root", str(tmp_path / "data"), "--output", str(tmp_path / "out"), *args], capsys)
    assert named in line and "at least 1" in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"input_size": 0}, "input_size=0"),
        ({"input_size": (256, 16)}, "input_size=16"),
        ({"flow_steps": 0}, "flow_steps=0"),
        ({"hidden_ratio": 0.0}, "hidden_ratio=0.0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"feature_pooling": 2}, "feature_pooling=2"),
        ({"smoothing_sigma": -1.0}, "smoothing_sigma=-1.0"),
    ],
)
def test_fastflow_names_a_bad_argument_and_its_range(options: dict[str, object], named: str) -> None:
    with pytest.raises(InputError, match=named.replace("(", r"\(").replace(")", r"\)")):
        FastFlow(weights="random", **options)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"max_epochs": 0}, "max_epochs=0 trains nothing"), ({"max_epochs": -1}, "-1 means no limit")],
    ids=["zero", "unbounded"],
)
def test_a_fit_that_trains_nothing_or_never_ends_is_refused(
    limits: dict[str, int], expected: str, tiny_dataset: Path, tmp_path: Path
) -> None:
    model = FastFlow(input_size=64, flow_steps=2, weights="random")
    engine = Engine(default_root_dir=tmp_path, logger=False, **limits)
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    with pytest.raises(InputError, match=expected):
        engine.fit(model, datamodule=datamodule)
    assert not list(tmp_path.rglob("*.ckpt"))


# --- images -------------------------------------------------------------------------------------


def _bad_images(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad image file, and what its message must say."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated = _png(folder / "truncated.png", size=64)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    deep = folder / "deep.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(deep)
    return {
        "truncated": (truncated, "truncated or corrupt"),
        "empty": (folder / "empty.png", "the file is empty"),
        "text": (folder / "text.png", "not an image"),
        "bomb": (_png_claiming(folder / "bomb.png", 100_000, 100_000), "decompression bomb"),
        "16-bit": (deep, "more than 8 bits per channel"),
    }


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "bomb", "16-bit"])
def test_a_bad_image_is_named_with_what_is_wrong(kind: str, tmp_path: Path) -> None:
    path, reason = _bad_images(tmp_path)[kind]
    with pytest.raises(InputError, match=reason) as error:
        check_image_file(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("kind", ["truncated", "bomb", "16-bit"])
def test_report_checks_new_images_before_loading_the_model(kind: str, tmp_path: Path, capsys) -> None:
    path, reason = _bad_images(tmp_path / "images")[kind]
    for other in (tmp_path / "images").iterdir():
        if other != path:
            other.unlink()
    missing = tmp_path / "never_read.ckpt"  # the images are checked first: this is never opened
    line = _run(
        [
            "report",
            "--ckpt_path",
            str(missing),
            "--images",
            str(tmp_path / "images"),
            "--output",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert str(path) in line and reason in line


def test_report_names_a_folder_without_images(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    line = _run(_report(tmp_path / "never_read.ckpt", tmp_path / "empty", tmp_path / "r"), capsys)
    assert line.startswith(f"anomalib-fastflow: No images in {tmp_path / 'empty'}")


@pytest.mark.parametrize("problem", ["no_training_images", "no_such_category"])
def test_the_demo_names_a_folder_dataset_it_cannot_use(problem: str, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _category(root)
    category = "parts"
    if problem == "no_training_images":
        for path in (root / "parts" / "train" / "good").iterdir():
            path.unlink()
    else:
        category = "nope"
    output = tmp_path / "out"
    args = _folder_demo(root, f"[{category}]", output)
    line = _run(args, capsys)
    assert category in line and not output.exists()


def test_the_demo_names_a_bad_training_file_and_leaves_nothing_behind(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _category(root)
    bad = root / "parts" / "train" / "good" / "broken.png"
    bad.write_text("not an image\n")
    output = tmp_path / "out"
    args = _folder_demo(root, "[parts]", output)
    line = _run(args, capsys)
    assert str(bad) in line
    assert not output.exists()


# --- the report's folder --------------------------------------------------------------------------


def test_a_report_that_cannot_be_written_fails_before_the_model_loads(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    images = tmp_path / "new"
    _png(images / "a.png")
    missing = tmp_path / "never_read.ckpt"
    line = _run(
        ["report", "--ckpt_path", str(missing), "--images", str(images), "--output", str(blocker / "report")],
        capsys,
    )
    assert f"Cannot write the report to {blocker / 'report'}" in line


def test_a_report_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "report"
    (target / "images").mkdir(parents=True)
    (target / "index.html").write_text("old page")
    (target / "images" / "old.jpg").write_text("old panel")
    before = _fingerprint(target)
    with pytest.raises(RuntimeError, match="midway"), staged_folder(target) as folder:
        (folder / "images").mkdir()
        (folder / "images" / "old.jpg").write_text("new panel")
        raise RuntimeError("the run failed midway")
    assert _fingerprint(target) == before
    with staged_folder(target) as folder:
        (folder / "index.html").write_text("new page")
    assert _fingerprint(target) == {"index.html": hashlib.sha256(b"new page").hexdigest()}
    assert [path.name for path in tmp_path.iterdir()] == ["report"]  # no staging folder left


# --- thresholds ---------------------------------------------------------------------------------


def test_a_validation_threshold_sits_between_two_scores() -> None:
    scores = torch.tensor([0.1, 0.3, 0.5, 0.9])
    moved = between_scores(torch.tensor(0.5), scores)
    assert torch.isclose(moved, torch.tensor(0.4))
    assert ((scores > moved) == (scores >= 0.5)).all()  # anomalib's '>' flags what the F1 cut chose
    lowest = between_scores(torch.tensor(0.1), scores)  # every image flagged: half the gap below
    assert torch.isclose(lowest, torch.tensor(0.0)) and (scores > lowest).all()
    same = between_scores(torch.tensor(0.5), torch.full((3,), 0.5))
    assert same < 0.5 and (torch.full((3,), 0.5) > same).all()


def test_no_validation_image_sits_on_the_fitted_image_threshold(tiny_dataset: Path, tmp_path: Path) -> None:
    model = FastFlow(input_size=64, flow_steps=2, weights="random")
    engine = Engine(default_root_dir=tmp_path, logger=False, max_epochs=1)
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    engine.fit(model, datamodule=datamodule)
    model.eval()
    with torch.no_grad():
        scores = torch.cat([
            model.model(model.pre_processor.transform(batch.image)).pred_score
            for batch in datamodule.val_dataloader()
        ])  # fmt: skip
    threshold = model.post_processor.image_threshold
    assert torch.isfinite(threshold) and not torch.isclose(scores, threshold).any()
    f1_cut = PostProcessor.image_threshold.fget(model.post_processor)  # anomalib's: one of the scores
    assert torch.isclose(scores, f1_cut).any()
    assert ((scores > threshold) == (scores >= f1_cut)).all()  # the images the F1 cut chose, under '>'


def test_anomalibs_no_weights_warning_is_not_shown_for_a_checkpoint_the_user_named() -> None:
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    logger = logging.getLogger(checkpoint_report.ANOMALIB_ENGINE_LOGGER)
    logger.addHandler(handler)
    try:
        with checkpoint_report._weights_already_loaded():
            logger.warning("ckpt_path is not provided. Model weights will not be loaded.")
            logger.warning("something else")
        logger.warning("ckpt_path is not provided. Model weights will not be loaded.")
    finally:
        logger.removeHandler(handler)
    assert text.getvalue().splitlines() == [
        "something else",
        "ckpt_path is not provided. Model weights will not be loaded.",
    ]
