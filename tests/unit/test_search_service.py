"""SearchService on fakes: which embeddings a query uses, how image and text are fused, and what comes back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import InvalidInput
from orchestrator.services.search import SearchQuery, SearchService
from orchestrator.settings import SearchSettings
from tests.support.fakes import FakeIndex, FakeModels, FakePhotos, FakeProducts, unit_vector


def products(*ids: str) -> list[Product]:
    return [Product(product_id=i, name=f"product {i}", image=f"{i}.jpg") for i in ids]


@pytest.fixture
def service():
    photo = np.zeros((20, 30, 3), np.uint8)
    photo[5:15, 10:20] = 200
    return SearchService(FakePhotos({"img": photo}), FakeModels(), FakeIndex([("a", 0.9), ("gone", 0.8), ("b", 0.7)]),
                         FakeProducts(products("a", "b")), SearchSettings(image_weight=0.7, max_k=10))


async def test_text_search_queries_the_index_with_the_text_embedding(service):
    await service.search(SearchQuery(text="  black dress ", k=3))
    query, k, _ = service.index.queries[0]
    np.testing.assert_allclose(query[0], unit_vector("text:black dress"))
    assert k == 3


async def test_a_product_deleted_between_search_and_lookup_is_skipped(service):
    hits = await service.search(SearchQuery(text="shirt", k=3))
    assert [(h.product.product_id, h.score) for h in hits] == [("a", 0.9), ("b", 0.7)]


async def test_garment_and_text_are_fused_with_the_image_weight_and_renormalised(service):
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    await service.search(SearchQuery(image_id="img", mask=mask, text="in black", k=2, image_weight=0.25))
    # the garment was cut out and embedded (one clip_image call), the text embedded (one clip_text call)
    assert [call[0] for call in service.models.calls] == ["clip_image", "clip_text"]
    image = service.models.calls[0][2][0]
    fused = 0.25 * image + 0.75 * unit_vector("text:in black")
    np.testing.assert_allclose(service.index.queries[0][0][0], fused / np.linalg.norm(fused), atol=1e-6)


@pytest.mark.parametrize("inline", [True, False])
async def test_an_index_that_searches_inline_is_searched_on_the_event_loop_and_others_in_a_worker(inline):
    index = FakeIndex([("a", 0.9)], searches_inline=inline)
    service = SearchService(FakePhotos({}), FakeModels(), index, FakeProducts(products("a")), SearchSettings())
    hits = await service.search(SearchQuery(text="x", k=1))
    assert [h.product.product_id for h in hits] == ["a"]
    assert (index.search_threads == [threading.get_ident()]) is inline


async def test_filters_reach_the_index(service):
    product_filter = ProductFilter(categories=frozenset({"dress"}))
    await service.search(SearchQuery(text="x", k=1, filter=product_filter))
    assert service.index.queries[0][2] is product_filter


@pytest.mark.parametrize("query, message", [
    (SearchQuery(text="x", k=0), "k must be between 1 and 10"),
    (SearchQuery(text="x", k=11), "k must be between 1 and 10"),
    (SearchQuery(k=3), "give an image_id with a mask"),
    (SearchQuery(text="   ", k=3), "give an image_id with a mask"),
    (SearchQuery(image_id="img", k=3), "needs the chosen mask"),
    (SearchQuery(image=np.zeros((8, 8, 3), np.uint8), text="x", k=3, image_weight=1.5), "image_weight"),
])
async def test_bad_queries_are_refused(service, query, message):
    with pytest.raises(InvalidInput, match=message):
        await service.search(query)
