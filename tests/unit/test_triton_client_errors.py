"""Triton's errors become ours: a full queue is 429 at once, a down server 503 after bounded retries."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from orchestrator.clients.triton import TritonClient, translate_error
from orchestrator.errors import InvalidInput, ModelUnavailable, Overloaded
from orchestrator.settings import TritonSettings
from tests.conftest import free_port


@pytest.mark.parametrize("status, message, expected", [
    ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", Overloaded),
    ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'image'", InvalidInput),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", ModelUnavailable),
    ("StatusCode.NOT_FOUND", "Request for unknown model", ModelUnavailable),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ModelUnavailable),
])
def test_triton_errors_map_to_typed_errors(status, message, expected):
    error = translate_error("clip_image", InferenceServerException(message, status=status))
    assert isinstance(error, expected)
    assert "clip_image" in error.message


def test_overload_and_unavailability_tell_clients_when_to_retry():
    overloaded = translate_error("m", InferenceServerException("Exceeds maximum queue size", "StatusCode.UNAVAILABLE"))
    down = translate_error("m", InferenceServerException("connection refused", "StatusCode.UNAVAILABLE"))
    assert overloaded.status == 429 and overloaded.retry_after_s
    assert down.status == 503 and down.retry_after_s


async def test_a_server_that_is_down_fails_after_bounded_retries():
    client = TritonClient(TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=1, retries=2,
                                         retry_backoff_s=0.05))
    started = time.perf_counter()
    try:
        with pytest.raises(ModelUnavailable):
            await client.infer("clip_image", {"image": np.zeros((1, 224, 224, 3), np.uint8)}, ["embeddings"])
    finally:
        await client.close()
    assert time.perf_counter() - started < 10
