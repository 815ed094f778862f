"""Each HTTP response says where its time went inside the orchestrator (Server-Timing), unless switched off."""

from __future__ import annotations

import asyncio
import time

from orchestrator import timing
from tests.support.inprocess_api import inprocess_api


async def test_stages_of_a_request_add_up_across_threads_and_repeats():
    async def request() -> dict[str, float]:
        stages = timing.start_request()
        with timing.stage("index"):
            await asyncio.to_thread(time.sleep, 0.02)
        for _ in range(2):
            with timing.stage("preprocess"):
                await asyncio.sleep(0.01)
        return stages

    first, second = await asyncio.gather(asyncio.create_task(request()), asyncio.create_task(request()))
    for stages in (first, second):  # each request (task) keeps its own record
        assert list(stages) == ["index", "preprocess"]
        assert stages["index"] >= 0.02 and stages["preprocess"] >= 0.02


def test_outside_a_request_stage_records_nothing():
    async def work():
        with timing.stage("index"):
            pass
        return timing._STAGES.get()

    assert asyncio.run(work()) is None


def test_the_header_round_trips_through_its_parser():
    value = timing.header_value({"triton.clip_text_embed": 0.03104, "index": 0.002984}, 0.03685).decode()
    assert value == "triton.clip_text_embed;dur=31.04, index;dur=2.98, app;dur=36.85"
    assert timing.parse_header(value) == {"triton.clip_text_embed": 31.04, "index": 2.98, "app": 36.85}
    # other servers' metrics: descriptions, quoted or missing durations
    assert timing.parse_header('cache;desc="hit", db;dur="12.5";desc=x, bad;dur=abc, ;dur=3') == {"db": 12.5}


async def test_responses_carry_the_header_unless_it_is_switched_off(tmp_path):
    async with inprocess_api(tmp_path / "on") as client:
        found = await client.get("/v1/products/no-such-product")
        assert found.status_code == 404
        assert list(timing.parse_header(found.headers["server-timing"])) == ["app"]  # no stage on this route
    async with inprocess_api(tmp_path / "off", server_timing=False) as client:
        assert "server-timing" not in (await client.get("/v1/products/no-such-product")).headers
