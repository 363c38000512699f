"""The report page: every image it references exists, its numbers are the run's, its gallery is in
score order (misses and false alarms first), and it opens in a real browser."""

import io
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.demo import run_demo
from anomalib_fastflow.report import ScoredImage, write_page
from anomalib_fastflow.report.checkpoint_report import write_checkpoint_report


class _Page(HTMLParser):
    """What a test reads of the page: referenced files, table cells, gallery figures in order."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.figures: list[tuple[str, float]] = []
        self.cells: list[str] = []
        self.headers: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in {"img", "link", "script"}:
            self.sources.append(attributes.get("src") or attributes.get("href") or "")
        if tag == "figure":
            self.figures.append((attributes["class"], float(attributes["data-score"])))
        self._in = tag if tag in {"td", "th"} else None

    def handle_data(self, data: str) -> None:
        if self._in == "td":
            self.cells.append(data)
        elif self._in == "th":
            self.headers.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def _read(page: Path) -> _Page:
    parser = _Page()
    parser.feed(page.read_text())
    return parser


def _assert_gallery_in_order(figures: list[tuple[str, float]]) -> None:
    rank = {"miss": 0, "false-alarm": 1}
    keys = [(rank.get(outcome, 2), -score) for outcome, score in figures]
    assert keys == sorted(keys)


def _image(folder: Path, name: str) -> str:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(folder / "images" / name)
    return f"images/{name}"


def test_the_page_puts_misses_and_false_alarms_first_and_shows_the_runs_numbers(tmp_path: Path) -> None:
    cases = [(0.9, True, True), (0.2, True, False), (0.7, False, True), (0.1, False, False), (0.4, True, False),
             (0.6, False, True), (0.95, True, True)]  # fmt: skip
    images = [
        ScoredImage("parts", f"/data/{i}.png", score, decision, label, _image(tmp_path, f"{i}.jpg"))
        for i, (score, label, decision) in enumerate(cases)
    ]
    metrics = {"parts": {"image_AUROC": 0.87654321, "image_threshold": 12.345678}}
    page = _read(write_page(tmp_path, "t", {"backbone": "lite0"}, metrics, images))
    assert [outcome for outcome, _ in page.figures] == ["miss", "miss", "false-alarm", "false-alarm", "hit", "hit",
                                                        "correct-rejection"]  # fmt: skip
    _assert_gallery_in_order(page.figures)
    assert page.headers == ["category", "image_AUROC", "image_threshold"]
    assert page.cells == ["parts", "0.8765", "12.3457"]
    assert all((tmp_path / source).is_file() for source in page.sources)
    assert sum(source.endswith(".svg") for source in page.sources) == 2  # histogram, ROC + PR


def test_a_page_of_unlabelled_images_has_no_curves_and_puts_the_highest_scores_first(tmp_path: Path) -> None:
    images = [ScoredImage("new", f"{i}.png", score, score > 0.5, None, _image(tmp_path, f"{i}.jpg"))
              for i, score in enumerate([0.3, 0.9, 0.6])]  # fmt: skip
    page = _read(write_page(tmp_path, "t", {}, {}, images))
    assert [score for _, score in page.figures] == [0.9, 0.6, 0.3]
    assert [source for source in page.sources if source.endswith(".svg")] == ["histogram_0.svg"]


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-epoch FastFlow trained by the demo on the tiny dataset (read as MVTec, so that the demo
    does not rebuild the shared fixture), its checkpoint and the demo's output folder."""
    output = tmp_path_factory.mktemp("trained")
    run_demo(
        root=tiny_dataset, output=output, categories=["brick"], max_epochs=1, batch_size=4, dataset="MVTec"
    )
    [checkpoint] = output.rglob("*.ckpt")
    return checkpoint, output


@pytest.mark.slow
def test_the_report_of_a_checkpoint_shows_its_metrics_and_every_test_image(
    trained, tiny_dataset: Path, tmp_path: Path
) -> None:
    checkpoint, _ = trained
    data = DataSpec(name="MVTec", root=tiny_dataset, categories=["brick"])
    page_path = write_checkpoint_report(checkpoint, data=data, output=tmp_path / "report")
    page = _read(page_path)
    assert len(page.figures) == 4 + 8
    _assert_gallery_in_order(page.figures)
    assert all((page_path.parent / source).is_file() for source in page.sources)
    # the numbers are anomalib's: test the same checkpoint again and compare, four decimals
    from anomalib.engine import Engine

    from anomalib_fastflow import FastFlow

    model = FastFlow.from_checkpoint(checkpoint)
    [metrics] = Engine(default_root_dir=tmp_path / "again", logger=False).test(
        model, datamodule=data.datamodule("brick")
    )
    row = dict(zip(page.headers[1:], page.cells[1:], strict=True))
    for name in ("image_AUROC", "pixel_AUROC"):
        assert row[name] == f"{metrics[name]:.4f}"
    assert row["image_threshold"] == f"{float(model.post_processor.image_threshold):.4f}"


@pytest.mark.slow
def test_the_report_of_new_images_scores_every_image(trained, tiny_dataset: Path, tmp_path: Path) -> None:
    checkpoint, _ = trained
    page = _read(
        write_checkpoint_report(
            checkpoint, images=tiny_dataset / "brick" / "test" / "good", output=tmp_path / "new"
        )
    )
    assert len(page.figures) == 4 and {outcome for outcome, _ in page.figures} == {"unlabelled"}
    _assert_gallery_in_order(page.figures)


@pytest.mark.slow
def test_the_demos_report_opens_in_chromium_without_errors(trained) -> None:
    """Headless Chromium (Debian's, driven by Playwright) loads the page from disk: no console error,
    no failed request, and a screenshot that is not blank."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the dev extra has it)"
    )
    page_path = trained[1] / "report" / "index.html"
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=flags)
        page = chromium.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}"))
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        start = time.perf_counter()
        page.goto(page_path.as_uri(), wait_until="load")
        seconds = time.perf_counter() - start
        screenshot = page.screenshot(full_page=True)
        chromium.close()
    assert not problems, problems
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # not a blank page: text, figures and images
    print(f"chromium loaded the page in {seconds:.2f} s")
