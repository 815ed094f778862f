"""Every HTTP request is counted by method, route template (not the raw path) and the status it got."""

from __future__ import annotations

import re

from tests.support.inprocess_api import inprocess_api


def observed(metrics: str, method: str, route: str, status: str) -> float:
    pattern = (r'snapfit_http_request_duration_seconds_count\{method="%s",route="%s",status="%s"\} ([0-9.]+)'
               % (method, re.escape(route), status))
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def test_requests_are_counted_by_route_template_and_status(tmp_path):
    async with inprocess_api(tmp_path) as client:
        before = (await client.get("/metrics")).text
        assert (await client.get("/v1/products/no-such-product")).status_code == 404
        assert (await client.get("/v1/products/another-unknown")).status_code == 404
        assert (await client.get("/no/such/path")).status_code == 404
        after = (await client.get("/metrics")).text
    template = "/v1/products/{product_id}"
    assert observed(after, "GET", template, "404") - observed(before, "GET", template, "404") == 2
    assert observed(after, "GET", "unmatched", "404") - observed(before, "GET", "unmatched", "404") == 1
    assert "no-such-product" not in after
