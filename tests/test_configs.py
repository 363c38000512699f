"""Every YAML in configs/ parses with ``anomalib train -c`` and names the plugin's classes."""

from pathlib import Path

import pytest
from anomalib.cli import AnomalibCLI

from anomalib_fastflow import PRESETS

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_parses_with_the_anomalib_cli(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        AnomalibCLI(["train", "-c", str(config), "--print_config"], run=False)
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: anomalib_fastflow.FastFlow" in printed
    assert (
        "class_path: anomalib_fastflow.MVTec" in printed or "class_path: anomalib_fastflow.CIFAR10" in printed
    )


def test_every_preset_has_a_config() -> None:
    named = {line.split(":", 1)[1].strip() for path in CONFIGS for line in path.read_text().splitlines()
             if line.strip().startswith("backbone:")}  # fmt: skip
    assert set(PRESETS) <= named
