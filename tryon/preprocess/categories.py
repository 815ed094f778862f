"""Garment categories of LaDI-VTON (Dress Code's three; VITON-HD only has upper_body)."""

from __future__ import annotations

from typing import Literal

from tryon.preprocess.errors import UnknownCategory

Category = Literal["upper_body", "lower_body", "dresses"]
CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")


def check_category(category: str) -> str:
    """Returns `category` unchanged; raises UnknownCategory naming the valid ones otherwise."""
    if category not in CATEGORIES:
        raise UnknownCategory(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
    return category
