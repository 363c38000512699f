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
    rows = re.findall(
        r"^\| `(\w+\.py)` \| [^|]+ \| `([^`]+)`", (STUDIES / "README.md").read_text(), re.MULTILINE
    )
    assert sorted(name for name, _ in rows) == [script.name for script in SCRIPTS]
    root = STUDIES.parent
    assert all((root / doc).exists() for _, doc in rows), rows
