"""The OpenAPI document links each operation's answer to the operations its ids feed, by operationId."""

from __future__ import annotations

from orchestrator.app import create_app
from orchestrator.settings import Settings


def test_every_link_names_an_existing_operation_and_the_job_operations_are_reached():
    spec = create_app(Settings()).openapi()
    operation_ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    links = [link for ops in spec["paths"].values() for op in ops.values()
             for response in op["responses"].values() for link in response.get("links", {}).values()]
    assert links and all(link["operationId"] in operation_ids for link in links)
    targets = {link["operationId"] for link in links}
    for path, method in [("/v1/images/{image_id}/masks", "post"), ("/v1/search", "post"),
                         ("/v1/products/{product_id}", "get"), ("/v1/catalog/imports/{job_id}", "get"),
                         ("/v1/catalog/imports/{job_id}/resume", "post"), ("/v1/tryon/{job_id}/events", "get"),
                         ("/v1/tryon/{job_id}/result", "get")]:
        assert spec["paths"][path][method]["operationId"] in targets, (method, path)
