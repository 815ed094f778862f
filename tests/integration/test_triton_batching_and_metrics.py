"""Concurrent requests are batched by Triton's dynamic batcher, and :metrics reports per-model counters."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.integration import samples

pytestmark = pytest.mark.integration


def scrape(metrics_url: str) -> str:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        return response.read().decode()


def counter(text: str, name: str, model: str) -> float:
    pattern = rf'^{name}{{[^}}]*model="{model}"[^}}]*}} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE))


def test_concurrent_requests_are_batched_into_fewer_executions(triton_server):
    before = scrape(triton_server.metrics_url)
    feeds = samples.clip_image_feeds(batch=1)

    def one_request(_):
        client = grpcclient.InferenceServerClient(triton_server.grpc_url)
        try:
            tensor = grpcclient.InferInput("image", list(feeds["image"].shape), "UINT8")
            tensor.set_data_from_numpy(feeds["image"])
            return client.infer("clip_image", [tensor]).as_numpy("embeddings")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one_request, range(48)))
    assert all(r.shape == (1, 512) for r in results)
    assert all(np.allclose(r, results[0], atol=1e-5) for r in results)  # batching must not mix requests up

    after = scrape(triton_server.metrics_url)
    inferences = counter(after, "nv_inference_count", "clip_image") - counter(before, "nv_inference_count", "clip_image")
    executions = (counter(after, "nv_inference_exec_count", "clip_image")
                  - counter(before, "nv_inference_exec_count", "clip_image"))
    assert inferences == 48
    assert executions < inferences, f"{executions} executions for {inferences} inferences: nothing was batched"


def test_metrics_endpoint_has_counters_for_every_model(triton_server, grpc_client):
    text = scrape(triton_server.metrics_url)
    for model in ("sam_encoder", "sam_decoder", "clip_image", "clip_text", "clip_tokenizer", "clip_text_embed",
                  "tryon_classifier"):
        assert re.search(rf'^nv_inference_request_success{{[^}}]*model="{model}"', text, flags=re.MULTILINE), model
        assert re.search(rf'^nv_inference_request_duration_us{{[^}}]*model="{model}"', text, flags=re.MULTILINE)
