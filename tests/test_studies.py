"""Every study in ``studies/`` imports, answers ``--help`` and is in the studies' table with its doc."""

import contextlib
import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[1] / "studies"
SCRIPTS = sorted(STUDIES.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_study_imports_and_answers_help(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location(f"study_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # every import the study makes, without running it
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as exit:
        module.main()
    assert exit.value.code == 0
    question = " ".join(module.__doc__.splitlines()[0].split())
    assert output.getvalue().startswith("usage:") and question in " ".join(output.getvalue().split())


def test_every_study_is_in_the_table_with_an_existing_doc() -> None:
    rows = re.findall(r"^\| `(\w+\.py)` \| [^|]+ \| `([^`]+)`", (STUDIES / "README.md").read_text(), re.MULTILINE)
    assert sorted(name for name, _ in rows) == [script.name for script in SCRIPTS]
    root = STUDIES.parent
    assert all((root / doc).exists() for _, doc in rows), rows


def _self_validation_study() -> object:
    spec = importlib.util.spec_from_file_location("study_self_validation", STUDIES / "self_validation_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    return study


def test_the_self_validation_study_replays_stopping_rules_on_cycle_traces(tmp_path: Path) -> None:
    study = _self_validation_study()
    traces = {"0": ([0.70, 0.75, 0.74, 0.76], [0.90, 0.94, 0.96, 0.80]), "1": ([0.80, 0.79, 0.81, 0.82], [0.92, 0.93, 0.91, 0.90])}
    with (tmp_path / "cycles.csv").open("w") as file:
        file.write(",".join(study.CYCLE_FIELDS) + "\n")
        for seed, (selection, test) in traces.items():
            for cycle, (score, auroc) in enumerate(zip(selection, test, strict=True), start=1):
                file.write(f"brick,{seed},{cycle},{10 * cycle},,,{score},{auroc},{cycle}\n")
    lines = study._cycles_section(tmp_path, held_out=4)
    assert any("(4 held out)" in line for line in lines)  # the runs' hold-out, not a fixed 8
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in lines if line.startswith("| ")}
    # patience 1 (no min_delta) keeps cycle 2 (seed 0, stopped after 3) and cycle 1 (seed 1, stopped after 2)
    assert rows["patience 1 (0.2.0)"][0] == f"{(0.94 + 0.92) / 2:.3f} / {(3 + 2) / 2:.0f}"
    assert rows["patience 2"][0] == "-"  # both traces end before it stops: no figure rather than a flattering one
    assert rows["patience 1, min_delta 0.02"][0] == f"{(0.94 + 0.92) / 2:.3f} / 2"  # +0.05 counts, +0.01 does not
    assert rows["best cycle by test labels"][0] == f"{(0.94 + 0.93) / 2:.3f}"  # cycle 2 (cycle 3 ties)
    assert (tmp_path / "cycles.png").exists()


def test_the_self_validation_study_replays_keep_best_epoch_on_a_curve() -> None:
    """The epoch with the best mean of image and pixel estimate, the later of a tie (0-based)."""
    study = _self_validation_study()
    curve = [
        {"self_image_AUROC": str(image), "self_pixel_AUROC": str(pixel), "self_AUPRO": "0.5"}
        for image, pixel in ((0.6, 0.6), (0.9, 0.7), (1.0, 0.5), (0.7, 0.9), (0.5, 0.5))
    ]
    assert study.kept_epoch(curve) == 3  # (0.7, 0.9) ties (0.9, 0.7) at 0.8 and comes later; (1.0, 0.5) is lower
    assert study.kept_epoch(curve[:3]) == 1
