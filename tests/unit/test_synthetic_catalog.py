"""The synthetic demo catalog: files and CSV layout, determinism, coverage, parseability, speed."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from export.labelled_images import find_labelled_images
from orchestrator.images import decode_image
from orchestrator.ingest.csv_rows import parse_catalog_csv
from snapfit.demo_catalog import (
    COLOURS,
    CSV_COLUMNS,
    GARMENTS,
    PATTERNS,
    STAMP_NAME,
    TRYON_LABELS_NAME,
    ensure_catalog,
    generate_catalog,
)

CATEGORIES = {"top", "bottom", "dress", "outer"}


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def _decode(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), max_bytes=10_000_000, max_pixels=10_000_000)


@pytest.fixture(scope="module")
def thousand(tmp_path_factory) -> tuple[Path, float]:
    """1,000 products generated once for the module; also how long that took in seconds."""
    started = time.perf_counter()
    csv_path = generate_catalog(tmp_path_factory.mktemp("demo"), count=1000, seed=0)
    return csv_path, time.perf_counter() - started


def test_generate_writes_the_csv_in_the_original_layout_with_one_photo_per_row(tmp_path):
    csv_path = generate_catalog(tmp_path / "demo", count=40, seed=3)

    with csv_path.open(encoding="utf-8") as file:
        assert file.readline().strip() == ",".join(CSV_COLUMNS)
    rows = _rows(csv_path)
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    for row in rows:
        image = csv_path.parent / row["image"]
        assert not Path(row["image"]).is_absolute() and image.is_file()
        assert image.suffix in (".jpg", ".png")
        assert row["link"] == f"https://shop.example.com/products/{row['id']}"
    assert sum("non-product" in r["tags"] for r in rows) == 4


def test_generate_is_deterministic_for_a_seed(tmp_path):
    first = generate_catalog(tmp_path / "a", count=20, seed=7)
    second = generate_catalog(tmp_path / "b", count=20, seed=7)
    other = generate_catalog(tmp_path / "c", count=20, seed=8)

    assert first.read_bytes() == second.read_bytes()
    for row in _rows(first):
        assert (first.parent / row["image"]).read_bytes() == (second.parent / row["image"]).read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_any_24_products_cover_every_garment_colour_pattern_and_category(tmp_path):
    rows = _rows(generate_catalog(tmp_path, count=24, seed=0, non_product_fraction=0.0))

    tags = [set(r["tags"].split("|")) for r in rows]
    assert {g for g in GARMENTS if any(g in t for t in tags)} == set(GARMENTS)
    assert {c for c in COLOURS if any(c in t for t in tags)} == set(COLOURS)
    assert {p for p in PATTERNS if any(p in t for t in tags)} == set(PATTERNS)
    assert {r["category"] for r in rows} == CATEGORIES


def test_names_and_tags_say_the_colour_and_garment_in_english_or_korean(thousand):
    rows = [r for r in _rows(thousand[0]) if "non-product" not in r["tags"]]

    for row in rows:
        colour, pattern, garment = row["tags"].split("|")[:3]
        english, korean = GARMENTS[garment][1], GARMENTS[garment][2]
        assert GARMENTS[garment][0] == row["category"] and row["category"] in row["tags"].split("|")
        assert (colour.title() in row["name"] and english in row["name"]) or (
            COLOURS[colour][1] in row["name"] and korean in row["name"])
    korean_dresses = [r["name"] for r in rows if r["name"].endswith("원피스")]
    assert any(name.startswith("검은색") for name in korean_dresses)
    red_dresses = [r for r in rows if {"red", "dress"} <= set(r["tags"].split("|"))]
    assert len(red_dresses) >= 5


def test_the_generated_csv_parses_with_zero_errors(thousand):
    rows, errors = parse_catalog_csv(thousand[0], allowed_categories=CATEGORIES)

    assert errors == [] and len(rows) == 1000
    assert all(Path(r.image).is_file() for r in rows[:50])
    assert all(r.price is not None and r.price > 0 for r in rows)
    assert any(not r.brand.isascii() for r in rows)  # Korean brands too


def test_product_photos_are_small_garments_on_a_light_background(thousand):
    csv_path = thousand[0]
    rows = _rows(csv_path)
    products = [r for r in rows if "non-product" not in r["tags"]][:30]

    for row in products:
        pixels = _decode(csv_path.parent / row["image"])
        height, width, _ = pixels.shape
        assert 256 <= height == width <= 384
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        # a light background reaches every edge: white, or light grey behind a white garment so that its edges show
        if row["tags"].split("|")[0] == "white":
            assert 190 <= border.min() and border.max() <= 225, row["image"]
        else:
            assert border.min() >= 225, row["image"]
        centre = pixels[height // 3: 2 * height // 3, width // 3: 2 * width // 3].reshape(-1, 3)
        expected = np.array(COLOURS[row["tags"].split("|")[0]][0])
        assert np.abs(np.median(centre, axis=0) - expected).max() < 70 or row["tags"].split("|")[1] != "solid"


def test_non_product_photos_are_not_light_product_shots(thousand):
    csv_path = thousand[0]
    others = [r for r in _rows(csv_path) if "non-product" in r["tags"]]

    assert len(others) == 100
    assert {r["tags"].split("|")[1] for r in others} == {"scene", "noise", "person"}
    for row in others[:15]:
        pixels = _decode(csv_path.parent / row["image"])
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        assert border.mean() < 225 or border.std() > 30, row["image"]


def test_generating_1000_products_takes_well_under_a_minute(thousand):
    seconds = thousand[1]
    print(f"generated 1,000 synthetic products in {seconds:.1f} s")

    assert seconds < 60


def test_generate_refuses_a_negative_count_or_a_fraction_outside_0_to_1(tmp_path):
    with pytest.raises(ValueError):
        generate_catalog(tmp_path, count=-1)
    with pytest.raises(ValueError):
        generate_catalog(tmp_path, count=10, non_product_fraction=1.5)


def test_a_smaller_catalog_is_a_prefix_of_a_larger_one(tmp_path):
    small = generate_catalog(tmp_path / "small", count=30, seed=2).read_text().splitlines()
    large = generate_catalog(tmp_path / "large", count=90, seed=2).read_text().splitlines()
    assert small == large[:31]


def test_the_try_on_labels_beside_the_catalog_are_what_train_classifier_reads(tmp_path):
    catalog = generate_catalog(tmp_path, count=40, seed=2, non_product_fraction=0.25)
    with catalog.open(encoding="utf-8") as file:
        non_products = {row["image"] for row in csv.DictReader(file) if "non-product" in row["tags"]}
    found = find_labelled_images(tmp_path / TRYON_LABELS_NAME)
    assert not found.skipped and len(found.items) == 40 and len(non_products) == 10
    unusable = {str(item.path.relative_to(tmp_path)) for item in found.items if item.label == 0}
    assert unusable == non_products


def test_ensure_catalog_reuses_only_what_this_generator_drew(tmp_path):
    csv_path, generated = ensure_catalog(tmp_path, count=24)
    assert generated and len(_rows(csv_path)) == 24
    photos = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    assert ensure_catalog(tmp_path, count=24) == (csv_path, False)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()} == photos
    # drawn by another version of the generator (its stamp differs): generated again, stray photos removed
    (tmp_path / STAMP_NAME).write_text("another version")
    (tmp_path / "images" / "SF-999999.png").write_bytes(b"old")
    assert ensure_catalog(tmp_path, count=24) == (csv_path, True)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(photos)
    assert ensure_catalog(tmp_path, count=30)[1] and len(_rows(csv_path)) == 30
