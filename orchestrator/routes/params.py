"""The API's path parameters: one description and example each, shared by every route that takes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

ImageId = Annotated[str, Path(
    description="the id `POST /v1/images` answered: the photo's SHA-256, 64 lowercase hex characters",
    examples=["5f2b8c0e9a1d4b7c3e6f8a0b2c4d6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d"])]
ProductId = Annotated[str, Path(description="a product's id, as the catalog CSV's `id` column has it",
                                examples=["SF-000002"])]
ImportJobId = Annotated[str, Path(description="the `job_id` that `POST /v1/catalog/imports` answered",
                                  examples=["9c1e4f0a2b3d4e5f8a7b6c5d4e3f2a1b"])]
TryOnJobId = Annotated[str, Path(description="the `job_id` that `POST /v1/tryon` answered",
                                 examples=["4d2a7e9c1b0f4a8e9d3c2b1a0f9e8d7c"])]
