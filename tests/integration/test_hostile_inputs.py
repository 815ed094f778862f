"""The hostile-input corpus (tests/support/hostile_inputs.py) through a real `snapfit serve` on a real Triton:
every input gets its documented answer, an error body when refused, and never a 5xx. An accepted photo is then
clicked: its masks have the size the user sees (EXIF applied), whatever its shape."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.orchestrator_process import running_orchestrator
from tests.support.hostile_inputs import json_cases, photo_cases, text_cases

pytestmark = pytest.mark.integration
PHOTOS, TEXTS, BODIES = photo_cases(), text_cases(), json_cases()


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    runs = tmp_path_factory.mktemp("hostile")
    with running_orchestrator(triton_server.grpc_url, runs, runs) as orchestrator:
        with httpx.Client(base_url=orchestrator.base, timeout=120) as client:
            yield client


def assert_error_body(response: httpx.Response, code: str | None = None) -> None:
    error = response.json()["error"]
    assert error["message"] and (code is None or error["code"] == code), error


@pytest.mark.parametrize("case", PHOTOS, ids=[c.name for c in PHOTOS])
def test_each_photo_gets_its_answer_and_an_accepted_one_segments_at_the_size_the_user_sees(api, case):
    uploaded = api.post("/v1/images", files={"file": ("photo", case.data, "application/octet-stream")})
    assert uploaded.status_code == case.status, uploaded.text
    if case.status != 200:
        assert_error_body(uploaded, case.code)
        return
    body = uploaded.json()
    assert (body["height"], body["width"]) == case.shown_hw
    height, width = case.shown_hw
    masks = api.post(f"/v1/images/{body['image_id']}/masks",
                     json={"points": [{"x": width // 2, "y": height // 2, "label": 1}]})
    assert masks.status_code == 200, masks.text
    assert all(m["rle"]["size"] == [height, width] for m in masks.json()["masks"])


@pytest.mark.parametrize("case", TEXTS, ids=[c.name for c in TEXTS])
def test_each_search_text_gets_its_answer(api, case):
    response = api.get("/v1/search", params={"q": case.text})
    assert response.status_code == case.status, response.text
    if case.status != 200:
        assert_error_body(response)


def test_a_query_that_is_not_utf8_is_refused_or_searched_never_a_server_error(api):
    response = api.get("/v1/search?q=%FF%FEdress%C0%AF")
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        assert_error_body(response)


@pytest.mark.parametrize("case", BODIES, ids=[c.name for c in BODIES])
def test_each_json_body_gets_its_answer(api, case):
    response = api.post("/v1/search", content=case.body, headers={"Content-Type": "application/json"})
    assert response.status_code in case.statuses, response.text[:500]
    if response.status_code != 200:
        assert_error_body(response)
