"""Garment categories of LaDI-VTON (Dress Code's three; VITON-HD only has upper_body)."""

from __future__ import annotations

from typing import Literal

from snapfit.contract import TRYON_CATEGORIES
from tryon.preprocess.errors import UnknownCategory

Category = Literal["upper_body", "lower_body", "dresses"]  # for type checkers; the same as TRYON_CATEGORIES (tested)
CATEGORIES: tuple[str, ...] = TRYON_CATEGORIES


def check_category(category: str) -> str:
    """Returns `category` unchanged; raises UnknownCategory naming the valid ones otherwise."""
    if category not in CATEGORIES:
        raise UnknownCategory(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
    return category
