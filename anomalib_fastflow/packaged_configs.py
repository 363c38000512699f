"""The YAML configs shipped inside the package: the paper's presets and the benchmark grids.

A clone has them in ``configs/`` (a link to ``anomalib_fastflow/configs``); an installed package has
them in its own folder, which ``anomalib-fastflow configs`` prints, so ``anomalib train -c`` works
the same after ``pip install``.
"""

import shutil
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path


def config_folder() -> Path:
    """The folder of the shipped configs (``fastflow_*.yaml``, ``cifar10.yaml``, ``benchmark/*.yaml``)."""
    return Path(str(files("anomalib_fastflow") / "configs"))


def config_files(names: Sequence[str] | None = None, output: Path | None = None) -> list[Path]:
    """The shipped configs named ``names`` (all by default), copied to ``output`` if given.

    Args:
        names: File names relative to the config folder, without ``.yaml`` (``benchmark/quick``).
        output: Folder to copy them to, keeping their relative paths; ``None``: the shipped files.

    Returns:
        The shipped files, or their copies under ``output``.

    Raises:
        ValueError: A name that is not a shipped config (the message lists them).
    """
    folder = config_folder()
    available = {
        path.relative_to(folder).with_suffix("").as_posix(): path for path in sorted(folder.rglob("*.yaml"))
    }
    unknown = sorted(set(names or ()) - set(available))
    if unknown:
        msg = f"No shipped config named {unknown}; choose from {sorted(available)}."
        raise ValueError(msg)
    chosen = [available[name] for name in names] if names else list(available.values())
    if output is None:
        return chosen
    copies = []
    for path in chosen:
        copy = Path(output) / path.relative_to(folder)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies
