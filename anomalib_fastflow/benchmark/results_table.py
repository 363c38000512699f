"""A CSV of finished runs that a long measurement appends to as it goes, so that a rerun resumes it."""

import csv
from collections.abc import Sequence
from pathlib import Path


class ResultsTable:
    """Rows of finished runs, keyed by some of their columns; the file is rewritten after each ``add``.

    Args:
        path: The CSV file (read if it exists).
        fields: Its columns, in order.
        key: The columns that name a run.
        defaults: Values for columns that an older file lacks.
    """

    def __init__(
        self, path: Path, fields: Sequence[str], key: Sequence[str], defaults: dict[str, str] | None = None
    ) -> None:
        self.path, self.fields, self.key = Path(path), tuple(fields), tuple(key)
        self.rows: list[dict[str, str]] = []
        if self.path.is_file():
            with self.path.open(newline="") as file:
                self.rows = [{**(defaults or {}), **row} for row in csv.DictReader(file)]

    def _key(self, row: dict[str, object]) -> tuple[str, ...]:
        return tuple(str(row[name]) for name in self.key)

    def has(self, *key: str) -> bool:
        """Whether a row of the run ``key`` exists."""
        return any(self._key(row) == key for row in self.rows)

    def status(self, *key: str) -> str | None:
        """The ``status`` column of the run ``key`` (``ok``, ``failed``, ``skipped``), or None if it never ran."""
        found = [row["status"] for row in self.rows if self._key(row) == key]
        return found[0] if found else None

    def done(self, *key: str) -> bool:
        """Whether the run ``key`` finished without error (a failed run is retried)."""
        return self.status(*key) == "ok"

    def add(self, row: dict[str, object]) -> None:
        """Record a run (replacing an earlier row of the same key) and rewrite the file."""
        self.rows = [r for r in self.rows if self._key(r) != self._key(row)]
        self.rows.append({name: str(row.get(name, "")) for name in self.fields})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(self.rows)
