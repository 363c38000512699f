"""A report folder is always from one run: it is written beside its place, then moved into it whole."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; on success it replaces ``target``, on failure it goes.

    The folder is made first, so that a target that cannot be written fails before any work;
    ``target`` itself is only touched once everything was written (a rename on the same disk).

    Raises:
        InputError: ``target`` is a file, or its parent folder cannot be made or written.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        msg = f"Cannot write the report to {target}: it is a file, not a folder."
        raise InputError(msg)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as error:
        msg = f"Cannot write the report to {target}: {error.strerror or error}."
        raise InputError(msg) from None
    try:
        yield staging
        previous = staging.with_name(f"{staging.name}.previous")
        if target.exists():
            target.rename(previous)
        staging.rename(target)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
