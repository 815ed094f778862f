"""Concurrent requests are batched by Triton's dynamic batcher, and :metrics reports per-model counters."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.onnx_io import open_session
from tests.integration import samples

pytestmark = pytest.mark.integration


def scrape(metrics_url: str) -> str:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        return response.read().decode()


def counter(text: str, name: str, model: str) -> float:
    pattern = rf'^{name}{{[^}}]*model="{model}"[^}}]*}} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE))


def test_concurrent_requests_are_batched_into_fewer_executions_and_each_gets_its_own_answer(triton_server):
    before = scrape(triton_server.metrics_url)
    images = samples.clip_image_feeds(batch=48)["image"]  # 48 different photos
    session, _ = open_session(triton_server.launch.repository / "clip_image" / "1" / "model.onnx")
    expected = np.concatenate([session.run(["embeddings"], {"image": image[None]})[0] for image in images])

    def one_request(index: int) -> np.ndarray:
        client = grpcclient.InferenceServerClient(triton_server.grpc_url)
        try:
            tensor = grpcclient.InferInput("image", [1, *images.shape[1:]], "UINT8")
            tensor.set_data_from_numpy(images[index:index + 1])
            return client.infer("clip_image", [tensor]).as_numpy("embeddings")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = np.concatenate(list(pool.map(one_request, range(len(images)))))
    assert results.shape == (48, 512)
    # every answer is its own image's embedding, and the images' embeddings all differ, so a mix-up between
    # members of a batch would show
    nearest = np.argmax(results @ expected.T, axis=1)
    assert nearest.tolist() == list(range(48))
    np.testing.assert_allclose(results, expected, atol=1e-4)
    assert min(np.abs(expected[i] - expected[j]).max() for i in range(48) for j in range(i)) > 1e-3

    after = scrape(triton_server.metrics_url)
    inferences = (counter(after, "nv_inference_count", "clip_image")
                  - counter(before, "nv_inference_count", "clip_image"))
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
