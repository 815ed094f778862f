"""SearchService on fakes: which embeddings a query uses, how image and text are fused, and what comes back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import InvalidInput, ModelUnavailable, NotFound
from orchestrator.services import search as search_module
from orchestrator.services.search import SearchQuery, SearchService
from orchestrator.settings import SearchSettings
from orchestrator.timing import start_request
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
    # the text embedded (one clip_text call), the garment cut out and embedded (one clip_image call)
    assert [call[0] for call in service.models.calls] == ["clip_text", "clip_image"]
    image = service.models.calls[1][2][0]
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


def garment_mask() -> np.ndarray:
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    return mask


class SlowTextModels(FakeModels):
    """FakeModels whose text tower takes `text_seconds` and logs when it starts, ends or is cancelled."""

    def __init__(self, text_seconds: float):
        super().__init__()
        self.text_seconds = text_seconds
        self.events: list[str] = []

    async def clip_text(self, texts):
        self.events.append("text starts")
        try:
            await asyncio.sleep(self.text_seconds)
        except asyncio.CancelledError:
            self.events.append("text cancelled")
            raise
        self.events.append("text ends")
        return await super().clip_text(texts)

    async def clip_image(self, images):
        self.events.append("image")
        self.image_shapes = [image.shape for image in images]
        return await super().clip_image(images)


def slow_text_service(text_seconds: float) -> SearchService:
    photo = np.zeros((20, 30, 3), np.uint8)
    photo[5:15, 10:20] = 200
    return SearchService(FakePhotos({"img": photo}), SlowTextModels(text_seconds), FakeIndex([("a", 0.9)]),
                         FakeProducts(products("a")), SearchSettings())


async def test_the_garment_is_cut_out_while_the_text_tower_runs_and_the_towers_run_in_turn(monkeypatch):
    service = slow_text_service(0.2)
    events, resize = service.models.events, search_module.resize_and_crop

    def recording_resize(image):
        events.append("crop")
        return resize(image)

    monkeypatch.setattr(search_module, "resize_and_crop", recording_resize)
    await service.search(SearchQuery(image_id="img", mask=garment_mask(), text="in black", k=1))
    assert events == ["text starts", "crop", "text ends", "image"]


async def test_the_overlapped_cut_out_has_its_own_server_timing_stage():
    stages = start_request()
    await slow_text_service(0.0).search(SearchQuery(image_id="img", mask=garment_mask(), text="x", k=1))
    assert "preprocess.overlapped" in stages and "preprocess" not in stages
    stages = start_request()
    await slow_text_service(0.0).search(SearchQuery(image_id="img", mask=garment_mask(), k=1))
    assert "preprocess" in stages and "preprocess.overlapped" not in stages


async def test_a_garment_that_cannot_be_cut_out_cancels_the_text_call_it_ran_beside():
    service = slow_text_service(30.0)
    with pytest.raises(InvalidInput, match="mask is empty"):
        await service.search(SearchQuery(image_id="img", mask=np.zeros((20, 30), bool), text="x", k=1))
    await asyncio.sleep(0)  # the cancellation reaches the text call
    assert service.models.events == ["text starts", "text cancelled"]


async def test_an_unknown_photo_with_text_fails_without_waiting_for_the_text_tower():
    service = slow_text_service(30.0)
    with pytest.raises(NotFound):
        await asyncio.wait_for(service.search(SearchQuery(image_id="nope", mask=garment_mask(), text="x", k=1)), 5)
    await asyncio.sleep(0)
    assert service.models.events == ["text starts", "text cancelled"]


async def test_a_bad_image_weight_is_refused_before_any_model_runs(service):
    with pytest.raises(InvalidInput, match="image_weight"):
        await service.search(SearchQuery(image_id="img", mask=garment_mask(), text="x", k=1, image_weight=-0.1))
    assert service.models.calls == []


async def test_a_whole_image_is_sized_for_clip_before_the_image_tower():
    service = slow_text_service(0.0)
    await service.search(SearchQuery(image=np.full((300, 400, 3), 9, np.uint8), k=1))
    assert service.models.image_shapes == [(224, 224, 3)]


async def test_a_text_tower_that_is_down_fails_the_search_with_its_own_error_after_the_crop(monkeypatch):
    service = slow_text_service(0.0)

    async def unavailable(texts):
        service.models.events.append("text starts")
        raise ModelUnavailable("clip_text_embed is not ready")

    monkeypatch.setattr(service.models, "clip_text", unavailable)
    with pytest.raises(ModelUnavailable, match="clip_text_embed"):
        await service.search(SearchQuery(image_id="img", mask=garment_mask(), text="x", k=1))
    assert service.models.events == ["text starts"]  # the image tower is not called for a search that failed
