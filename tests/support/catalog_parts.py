"""A synthetic catalog as two CSVs beside one image folder: its first rows, and the whole of it (an import that
is then extended, as a shop's catalog grows)."""

from __future__ import annotations

from pathlib import Path

from snapfit.demo_catalog import generate_catalog


def catalog_and_its_start(out_dir: Path, count: int, first: int, seed: int) -> tuple[Path, Path]:
    """(a CSV of the first `first` rows, the CSV of all `count`)."""
    whole = generate_catalog(out_dir, count=count, seed=seed)
    header, *rows = whole.read_text(encoding="utf-8").splitlines(keepends=True)
    start = whole.with_name("first-rows.csv")
    start.write_text(header + "".join(rows[:first]), encoding="utf-8")
    return start, whole
