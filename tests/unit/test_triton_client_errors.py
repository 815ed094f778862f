"""Triton's errors become ours: a full queue is 429 at once, a down server 503 after bounded retries."""

from __future__ import annotations

import asyncio
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


class _CountingTriton:
    """A gRPC server answering Triton's ModelReady (and nothing else), counting the calls it gets."""

    def __init__(self):
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        outer = self
        self.calls = 0

        class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
            async def ModelReady(self, request, context):  # noqa: N802 - the gRPC method's name
                outer.calls += 1
                return service_pb2.ModelReadyResponse(ready=True)

        self.server = grpc.aio.server()
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")


async def test_calls_are_spread_round_robin_over_every_resolved_address_and_the_channel_is_renewed():
    servers = [_CountingTriton(), _CountingTriton()]
    for server in servers:
        await server.server.start()
    # a static two-address target stands in for a headless Service's DNS name resolving to two Triton pods
    url = "ipv4:" + ",".join(f"127.0.0.1:{s.port}" for s in servers)
    client = TritonClient(TritonSettings(grpc_url=url, channel_refresh_s=0.2))
    try:
        for _ in range(20):
            assert await client.models_ready(["clip_image"]) == {"clip_image": True}
        assert all(s.calls >= 5 for s in servers), [s.calls for s in servers]
        first = client._unary_client
        await asyncio.sleep(0.25)
        assert await client.models_ready(["clip_image"]) == {"clip_image": True}
        assert client._unary_client is not first and len(client._retiring) == 1  # the old one closes later
    finally:
        await client.close()
        for server in servers:
            await server.server.stop(None)
    assert not client._retiring


def _calls_wait_for_release(monkeypatch, client: TritonClient, output: str) -> asyncio.Event:
    """Makes every call of `client` wait until the returned event is set, then answer {output: 1x4 zeros}."""
    release = asyncio.Event()

    async def slow_infer(model, inputs, outputs, timeout_s):
        await release.wait()
        return {output: np.zeros((1, 4), np.float32)}
    monkeypatch.setattr(client, "_infer", slow_infer)
    return release


async def test_calls_past_the_in_flight_limit_of_a_model_are_refused_at_once_and_others_pass(monkeypatch):
    client = TritonClient(TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", max_in_flight_per_model=2))
    release = _calls_wait_for_release(monkeypatch, client, "embeddings")
    try:
        held = [asyncio.create_task(client.infer("clip_image", {}, ["embeddings"])) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await client.infer("clip_image", {}, ["embeddings"])
        assert refused.value.status == 429 and refused.value.retry_after_s
        other = asyncio.create_task(client.infer("clip_text_embed", {}, ["embeddings"]))  # its own limit
        release.set()
        await asyncio.gather(*held, other)
        assert (await client.infer("clip_image", {}, ["embeddings"]))["embeddings"].shape == (1, 4)  # freed again
    finally:
        await client.close()


async def test_the_sam_encoder_has_its_own_smaller_in_flight_limit(monkeypatch):
    client = TritonClient(TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", max_in_flight_per_model=16,
                                         encoder_max_in_flight=2))
    release = _calls_wait_for_release(monkeypatch, client, "image_embeddings")
    try:
        held = [asyncio.create_task(client.infer("sam_encoder", {}, ["image_embeddings"])) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="sam_encoder is busy \\(2 calls in flight\\)"):
            await client.infer("sam_encoder", {}, ["image_embeddings"])
        others = [asyncio.create_task(client.infer("sam_decoder", {}, ["image_embeddings"])) for _ in range(3)]
        release.set()
        await asyncio.gather(*held, *others)  # the decoder keeps the general limit
    finally:
        await client.close()


async def test_a_finished_stream_that_triton_does_not_close_is_cancelled_after_the_wait():
    import asyncio

    from orchestrator.clients.triton import _finish_stream

    class Responses:  # a stream whose server never ends it
        cancelled = False

        def __aiter__(self):
            return self

        async def __anext__(self):
            await asyncio.sleep(3600)

        def cancel(self):
            self.cancelled = True

    hanging = Responses()
    await _finish_stream(hanging, timeout_s=0.05)
    assert hanging.cancelled

    class Ended(Responses):
        async def __anext__(self):
            raise StopAsyncIteration

    ended = Ended()
    await _finish_stream(ended)
    assert not ended.cancelled  # Triton ended it: nothing to cancel
