"""Request and response bodies of the HTTP API (a leaf module: imports nothing of ours)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no uploaded image 3f2a...; upload it with POST /v1/images"])


class ErrorBody(BaseModel):
    error: ErrorDetail


class ImageUploaded(BaseModel):
    image_id: str = Field(description="sha256 of the uploaded bytes", examples=["9f86d081884c7d65..."])
    width: int
    height: int


class Point(BaseModel):
    x: float = Field(description="pixels from the left edge of the original image", examples=[320])
    y: float = Field(description="pixels from the top edge", examples=[240])
    label: Literal[0, 1] = Field(1, description="1 = on the garment, 0 = not on the garment")


class Box(BaseModel):
    x0: float
    y0: float
    x1: float
    y1: float


class MasksRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"points": [{"x": 320, "y": 240, "label": 1}],
                                                               "format": "rle"}]})
    points: list[Point] = Field(default_factory=list, max_length=32)
    box: Box | None = None
    format: Literal["rle", "png"] = Field("rle", description="COCO uncompressed RLE or base64 PNG")


class MaskOut(BaseModel):
    score: float = Field(description="SAM's predicted IoU")
    rle: dict | None = Field(None, description='{"size": [H, W], "counts": [...]}, column-major, zeros first')
    png: str | None = Field(None, description="base64 1-bit PNG at the original size")


class MasksResponse(BaseModel):
    image_id: str
    width: int
    height: int
    masks: list[MaskOut] = Field(description="the top 3 masks, best first")


class MaskIn(BaseModel):
    rle: dict | None = None
    png: str | None = None


class Filters(BaseModel):
    category: list[str] | None = Field(None, examples=[["top"]])
    brand: list[str] | None = None
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    tryon_ready: bool | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"text": "black floral dress", "k": 10},
        {"image_id": "9f86d081884c7d65...", "mask": {"rle": {"size": [480, 640], "counts": [1000, 200, 306000]}},
         "text": "but in black", "filters": {"category": ["bottom"], "max_price": 50000}},
    ]})
    image_id: str | None = None
    mask: MaskIn | None = None
    text: str | None = Field(None, max_length=1000)
    image_weight: float | None = Field(None, ge=0, le=1, description="weight of the image when fusing with text")
    k: int | None = Field(None, ge=1)
    filters: Filters = Field(default_factory=Filters)


class ProductOut(BaseModel):
    product_id: str
    name: str
    image: str
    link: str
    brand: str
    price: float | None
    tags: list[str]
    category: str
    tryon_ready: bool
    tryon_probability: float | None


class ProductPageOut(BaseModel):
    products: list[ProductOut] = Field(description="at most `limit` products, ascending by product_id")
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last page",
                                   examples=["P0050"])
    total: int = Field(description="products matching `q` (every product without it), whatever `after` is")


class SearchHitOut(BaseModel):
    score: float = Field(description="cosine similarity of the query and the product photo")
    product: ProductOut


class SearchResponse(BaseModel):
    results: list[SearchHitOut]


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"price": 39900, "tags": ["black", "oversized"]},
        {"tryon_ready": False},
    ]})
    name: str | None = None
    link: str | None = None
    brand: str | None = None
    price: float | None = Field(None, ge=0)
    tags: list[str] | None = None
    category: str | None = None
    tryon_ready: bool | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = Field(default_factory=dict)
