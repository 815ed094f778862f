"""Photo–text pairs for CLIP fine-tuning, read from a catalog CSV in the import layout (id, name, image, link,
brand, price, tags, category; tags separated by "|"), and a held-out split by product.

Only what training needs is read: the product id, its photo (a local path, relative to the CSV's folder or
absolute) and its texts (the name, the tags, the category; any language). Rows without an id or a readable photo
are skipped and reported, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from export.labelled_images import DatasetError

REQUIRED_COLUMNS = ("id", "image")


@dataclass(frozen=True)
class CatalogPair:
    product_id: str
    image: Path
    name: str
    tags: tuple[str, ...]  # the tags column split on "|", then the category if not among them

    @property
    def title(self) -> str:
        """The product's name, else its tags as one phrase: what a held-out product is searched for with."""
        return self.name or " ".join(self.tags)


@dataclass
class CatalogPairs:
    pairs: list[CatalogPair]
    skipped: list[str] = field(default_factory=list)  # "line N: why"


def read_catalog_pairs(csv_path: Path) -> CatalogPairs:
    """The CSV's usable rows; DatasetError when the file cannot be read or lacks the id/image columns."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read the catalog {csv_path}: {error}") from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"{csv_path} has no {', '.join(missing)} column (columns: {reader.fieldnames})")
    found = CatalogPairs(pairs=[])
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        product_id, image = (row.get("id") or "").strip(), (row.get("image") or "").strip()
        if not product_id or not image:
            found.skipped.append(f"line {line}: no id or image")
            continue
        if product_id in seen:
            found.skipped.append(f"line {line}: duplicate id {product_id!r}")
            continue
        path = Path(image) if Path(image).is_absolute() else csv_path.parent / image
        if not path.is_file():
            found.skipped.append(f"line {line}: no photo at {path} (training reads local photos only)")
            continue
        seen.add(product_id)
        tags = [tag.strip() for tag in (row.get("tags") or "").split("|") if tag.strip()]
        category = (row.get("category") or "").strip()
        if category and category not in tags:
            tags.append(category)
        found.pairs.append(CatalogPair(product_id, path, (row.get("name") or "").strip(), tuple(tags)))
    if not found.pairs:
        raise DatasetError(f"{csv_path} has no row with an id and a readable local photo "
                           f"({len(found.skipped)} skipped, e.g. {found.skipped[:1]})")
    return found


def split_by_product(pairs: list[CatalogPair], held_out_fraction: float,
                     seed: int) -> tuple[list[CatalogPair], list[CatalogPair]]:
    """(train, held_out): each product wholly on one side, chosen by a seeded hash of its id (the same product
    stays held out when the catalog grows)."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")

    def rank(pair: CatalogPair) -> str:
        return hashlib.sha256(f"{seed}:{pair.product_id}".encode()).hexdigest()

    ordered = sorted(pairs, key=rank)
    held = max(1, round(len(ordered) * held_out_fraction))
    if held >= len(ordered):
        raise DatasetError(f"{len(ordered)} products are too few to hold out {held_out_fraction:.0%} and train on "
                           "the rest")
    held_out = {pair.product_id for pair in ordered[:held]}
    return ([p for p in pairs if p.product_id not in held_out], [p for p in pairs if p.product_id in held_out])
