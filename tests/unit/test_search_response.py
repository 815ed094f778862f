"""The search routes write their body with orjson (orchestrator/routes/search.py `respond`): it must be the very
body pydantic's SearchResponse (the documented response_model) gives, field for field and byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.domain import Product
from orchestrator.routes.products import product_out
from orchestrator.routes.search import respond
from orchestrator.schemas import ProductOut, SearchHitOut, SearchResponse
from orchestrator.services.search import SearchHit

PRODUCTS = [
    Product(product_id="P1", name="Red dress", image="https://img.example/1.jpg", link="https://shop.example/1",
            brand="acme", price=39000.0, tags=["dress", "red"], category="dress", tryon_ready=True,
            tryon_probability=0.93),
    Product(product_id="무신사-2", name='Quote " and \\ backslash, 한글, emoji 👗', image="local/2.png"),  # defaults
    Product(product_id="P3", name="no price", image="3.jpg", price=None, tags=[], tryon_probability=None),
    Product(product_id="P4", name="tiny", image="4.jpg", price=0.1 + 0.2, tryon_probability=1e-12),
    Product(product_id="P5", name="an int price, numpy numbers", image="5.jpg", price=39000,  # as another client
            tryon_ready=np.bool_(True), tryon_probability=np.float32(0.25)),                 # may have stored them
]


def pydantic_body(hits: list[SearchHit]) -> bytes:
    return SearchResponse(results=[SearchHitOut(score=h.score, product=product_out(h.product))
                                   for h in hits]).model_dump_json().encode()


@pytest.mark.parametrize("scores", [
    [0.8, 0.5, -0.25, 1.0, 0.1],
    [np.float32(0.7123), np.float32(0.5), np.float32(-0.1), np.float32(0.33333334), np.float32(0)],  # FAISS's
    [1 / 3, 2 / 3, 1e-7, -1e-30, 0.0],
])
def test_the_search_body_equals_pydantics_byte_for_byte(scores):
    hits = [SearchHit(product, float(score) if isinstance(score, float) else score)
            for product, score in zip(PRODUCTS, scores)]
    body = respond(hits).body
    assert body == pydantic_body(hits)
    assert SearchResponse.model_validate_json(body).results[1].product.name == PRODUCTS[1].name


def test_no_hits_is_an_empty_result_list():
    assert json.loads(respond([]).body) == {"results": []}
    assert respond([]).body == pydantic_body([])


def test_every_field_the_schema_documents_is_written():
    written = json.loads(respond([SearchHit(PRODUCTS[0], 0.5)]).body)["results"][0]
    assert set(written) == set(SearchHitOut.model_fields)
    assert set(written["product"]) == set(ProductOut.model_fields)
