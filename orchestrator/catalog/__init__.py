"""Catalog input: the crawled CSV (`csv_rows`), image loading for its rows (`image_source`) and a synthetic
demo catalog (`synthetic`, imported on its own: it is only needed by `snapfit catalog generate`)."""

from orchestrator.catalog.csv_rows import (
    CatalogRow,
    ColumnMapping,
    RowError,
    iter_catalog_rows,
    parse_catalog_csv,
)
from orchestrator.catalog.image_source import AddressPolicy, ImageLoader

__all__ = [
    "AddressPolicy",
    "CatalogRow",
    "ColumnMapping",
    "ImageLoader",
    "RowError",
    "iter_catalog_rows",
    "parse_catalog_csv",
]
