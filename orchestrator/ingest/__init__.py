"""The ingest side of CSV imports: parsing the crawled CSV (`csv_rows`) and loading its rows' images
(`image_source`). services/imports.py runs them; the synthetic demo catalog is snapfit/demo_catalog.py."""

from orchestrator.ingest.csv_rows import (
    CatalogRow,
    ColumnMapping,
    RowError,
    iter_catalog_rows,
    parse_catalog_csv,
)
from orchestrator.ingest.image_source import AddressPolicy, ImageLoader

__all__ = [
    "AddressPolicy",
    "CatalogRow",
    "ColumnMapping",
    "ImageLoader",
    "RowError",
    "iter_catalog_rows",
    "parse_catalog_csv",
]
