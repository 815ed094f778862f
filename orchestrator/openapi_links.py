"""OpenAPI links: how one operation's answer feeds the next (upload -> masks -> search, list -> product,
import -> job -> resume, try-on -> job -> events -> result).

Clients and generated SDKs read them as documentation; schemathesis' stateful run follows them, so fuzzing
reaches the operations that take an id with ids that exist (tests/integration/test_api_fuzz.py).
"""

from __future__ import annotations

from typing import Any

# (method, path, status) of the answer -> {link name: (method, path of the next operation, its parameters or
# request body, description)}
_LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, Any], str]]] = {
    ("post", "/v1/images", "200"): {
        "SegmentThePhoto": ("post", "/v1/images/{image_id}/masks",
                            {"parameters": {"image_id": "$response.body#/image_id"}}, "click on the uploaded photo"),
    },
    ("post", "/v1/images/{image_id}/masks", "200"): {
        "SearchWithTheBestMask": ("post", "/v1/search",
                                  {"requestBody": {"image_id": "$response.body#/image_id",
                                                   "mask": {"rle": "$response.body#/masks/0/rle"}}},
                                  "search with the garment of the best-scored mask"),
    },
    ("get", "/v1/products", "200"): {
        "GetTheFirstProduct": ("get", "/v1/products/{product_id}",
                               {"parameters": {"product_id": "$response.body#/products/0/product_id"}},
                               "the first listed product"),
        "GetItsThumbnail": ("get", "/v1/products/{product_id}/image",
                            {"parameters": {"product_id": "$response.body#/products/0/product_id"}},
                            "the first listed product's thumbnail"),
        "UpdateIt": ("patch", "/v1/products/{product_id}",
                     {"parameters": {"product_id": "$response.body#/products/0/product_id"}},
                     "change the first listed product (admin)"),
    },
    ("post", "/v1/catalog/imports", "202"): {
        "FollowTheImport": ("get", "/v1/catalog/imports/{job_id}", {"parameters": {"job_id": "$response.body#/job_id"}},
                            "the import's progress"),
        "ResumeTheImport": ("post", "/v1/catalog/imports/{job_id}/resume",
                            {"parameters": {"job_id": "$response.body#/job_id"}}, "resume it once it failed"),
    },
    ("post", "/v1/tryon", "202"): {
        "FollowTheTryOn": ("get", "/v1/tryon/{job_id}", {"parameters": {"job_id": "$response.body#/job_id"}},
                           "the try-on's state"),
        "StreamItsProgress": ("get", "/v1/tryon/{job_id}/events", {"parameters": {"job_id": "$response.body#/job_id"}},
                              "its progress as server-sent events"),
        "GetItsResult": ("get", "/v1/tryon/{job_id}/result", {"parameters": {"job_id": "$response.body#/job_id"}},
                         "the result image once it succeeded"),
        "CancelIt": ("delete", "/v1/tryon/{job_id}", {"parameters": {"job_id": "$response.body#/job_id"}},
                     "cancel it"),
    },
}


def add_links(spec: dict) -> dict:
    """Adds the links above to `spec` (FastAPI's generated OpenAPI document), by operationId; returns it."""
    paths = spec.get("paths", {})
    for (method, path, status), links in _LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            name: {"operationId": paths[target_path][target_method]["operationId"], **wiring,
                   "description": description}
            for name, (target_method, target_path, wiring, description) in links.items()
            if target_method in paths.get(target_path, {})
        }
    return spec
