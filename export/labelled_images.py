"""Labelled product photos for `snapfit train-classifier`: a usable/ + unusable/ folder pair, or a CSV.

Layouts accepted:
- DATA/usable/**/*.jpg and DATA/unusable/**/*.jpg (ImageFolder style; folder names are case-insensitive,
  images are found recursively, other folders are ignored with a note);
- a CSV with columns `image` (path relative to the CSV's folder, or absolute) and `label`
  (1/0, usable/unusable, true/false, yes/no; case-insensitive).
Rows that cannot be used (missing file, bad label) are skipped and reported, never fatal.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from snapfit.preprocessing.classifier import CLASS_NAMES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
LABELS = {
    "1": 1, "1.0": 1, "usable": 1, "true": 1, "yes": 1,
    "0": 0, "0.0": 0, "unusable": 0, "false": 0, "no": 0,
}


class DatasetError(ValueError):
    """The training data cannot be used at all (missing, empty, or a single class)."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # 1 = usable for try-on, 0 = not (index into CLASS_NAMES)


@dataclass
class LabelledImages:
    source: Path
    items: list[LabelledImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per unusable row or file, saying why

    def class_counts(self) -> dict[str, int]:
        counts = Counter(item.label for item in self.items)
        return {name: counts.get(label, 0) for label, name in enumerate(CLASS_NAMES)}


def find_labelled_images(data: Path) -> LabelledImages:
    """Lists the labelled images under `data` (a folder or a .csv file); DatasetError if there are none."""
    data = Path(data)
    if not data.exists():
        raise DatasetError(f"training data {data} does not exist")
    if data.is_file():
        if data.suffix.lower() != ".csv":
            raise DatasetError(f"{data} is a file but not a .csv; pass a CSV or a folder with usable/ and unusable/")
        found = _from_csv(data)
    else:
        found = _from_folders(data)
    if not found.items:
        details = f" ({len(found.skipped)} rows/files skipped: {found.skipped[0]} ...)" if found.skipped else ""
        raise DatasetError(f"no usable labelled images found in {data}{details}")
    return found


def _from_folders(root: Path) -> LabelledImages:
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if not set(CLASS_NAMES) & set(folders):
        raise DatasetError(f"{root} has neither usable/ nor unusable/ subfolders (found: "
                           f"{', '.join(sorted(folders)) or 'no folders'}); or pass a CSV with image,label columns")
    found = LabelledImages(source=root)
    for name in sorted(set(folders) - set(CLASS_NAMES)):
        found.skipped.append(f"{folders[name]}: folder ignored (only usable/ and unusable/ are read)")
    for label, name in enumerate(CLASS_NAMES):
        if name not in folders:
            continue
        for path in sorted(p for p in folders[name].rglob("*") if p.is_file()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.items.append(LabelledImage(path, label))
            elif not path.name.startswith("."):
                found.skipped.append(f"{path}: not an image file ({path.suffix or 'no suffix'})")
    return found


def _from_csv(path: Path) -> LabelledImages:
    found = LabelledImages(source=path)
    with path.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: spreadsheets write a BOM
        reader = csv.DictReader(handle)
        columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
        if "image" not in columns or "label" not in columns:
            raise DatasetError(f"{path} needs 'image' and 'label' columns; it has {sorted(columns) or 'no header'}")
        for row in reader:
            line = reader.line_num
            item, problem = _parse_row(row.get(columns["image"]), row.get(columns["label"]), path.parent)
            if problem:
                found.skipped.append(f"{path.name} line {line}: {problem}")
            else:
                found.items.append(item)
    return found


def _parse_row(image: str | None, label: str | None, base: Path) -> tuple[LabelledImage | None, str | None]:
    image, label = (image or "").strip(), (label or "").strip().lower()
    if not image:
        return None, "empty image path"
    if label not in LABELS:
        return None, f"label '{label}' is not one of 1/0, usable/unusable, true/false, yes/no"
    path = Path(image) if Path(image).is_absolute() else base / image
    if not path.is_file():
        return None, f"image {image} not found"
    return LabelledImage(path, LABELS[label]), None
