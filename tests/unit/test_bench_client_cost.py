"""benchmarks.client_cost against a stand-in API on a free loopback port."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.client_cost import CLIENTS, run
from tests.unit.test_bench_http_load import FakeApi, serving


def test_every_client_is_timed_on_every_path_against_the_raw_connection():
    fake = FakeApi()
    with serving(fake) as base:
        rows = run(base, ["/v1/search?q=a", "/v1/search?q=b"], calls=3, rounds=2)
    assert [(r["path"], r["client"]) for r in rows] == [(p, c) for p in ("/v1/search?q=a", "/v1/search?q=b")
                                                        for c in CLIENTS]
    assert all(r["calls"] == 6 and r["p50_ms"] > 0 for r in rows)
    assert all(r["added_ms"] == 0 for r in rows if r["client"] == "raw http.client")
    assert fake.texts.count("a") == fake.texts.count("b") == 18  # 3 clients x 2 rounds x 3 calls


def test_an_error_answer_stops_the_run_instead_of_timing_it():
    fake = FakeApi(search_statuses=itertools.repeat(500))
    with serving(fake) as base, pytest.raises(RuntimeError, match="answered 500"):
        run(base, ["/v1/search?q=a"], calls=2, rounds=1)


def test_non_loopback_targets_are_refused():
    with pytest.raises(ValueError):
        run("http://example.com", ["/healthz"], calls=1)
