"""Async gRPC access to Triton: numpy in, numpy out, Triton's errors translated into ours.

One `tritonclient.grpc.aio` client is shared by all unary requests, another by streams. Their channels
balance calls round-robin over every address the URL resolves to (`dns:///snapfit-triton-headless:8001` in
Kubernetes: one per Triton pod), and the unary client is replaced every `channel_refresh_s`, which re-resolves
the name, so Triton pods added by the autoscaler get calls within about that interval (a Service's virtual IP
would pin each channel to one pod). The replaced client closes once its calls have had time to end. Every call
carries a deadline; transient failures (server restarting, connection refused) are retried a bounded number of times
with jittered exponential backoff. A full model queue is not retried here: it becomes `Overloaded` (429)
at once, so back-pressure reaches the caller instead of piling up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from orchestrator.clients.shared_memory import Region, Regions
from orchestrator.errors import InvalidInput, ModelDeadlineExceeded, ModelUnavailable, Overloaded
from orchestrator.metrics import TRITON_CALL_SECONDS, TRITON_ERRORS
from orchestrator.settings import TritonSettings
from orchestrator.timing import stage
from snapfit import contract

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5.0


class TritonClient:
    def __init__(self, settings: TritonSettings):
        self.settings = settings
        self._unary_client = _open(settings.grpc_url)
        self._opened_at = time.monotonic()
        self._stream_client = _open(settings.grpc_url)
        self._retiring: set[asyncio.Task] = set()
        self._configs: dict[str, dict] = {}
        self._in_flight: dict[str, int] = {}
        self._regions = Regions() if settings.shared_memory else None

    @property
    def _client(self) -> grpcclient.InferenceServerClient:
        """The unary client, replaced by a fresh channel once it is older than channel_refresh_s."""
        refresh_s = self.settings.channel_refresh_s
        if refresh_s and time.monotonic() - self._opened_at > refresh_s:
            old, self._unary_client = self._unary_client, _open(self.settings.grpc_url)
            self._opened_at = time.monotonic()
            grace_s = max(self.settings.timeout_s, self.settings.encoder_timeout_s) + 5.0
            task = asyncio.get_running_loop().create_task(_close_later(old, grace_s))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return self._unary_client

    async def close(self) -> None:
        retiring = list(self._retiring)
        for task in retiring:
            task.cancel()  # each closes its client on the way out
        await asyncio.gather(*retiring, return_exceptions=True)
        if self._regions is not None:
            await self._regions.close(self._unary_client)
        await self._unary_client.close()
        await self._stream_client.close()

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
                    timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Runs `model` once. Inputs keep their numpy dtype (object arrays of bytes become BYTES).

        Admission: at most `max_in_flight_per_model` calls of one model at once from this process
        (`encoder_max_in_flight` of the SAM encoder); a call past that is Overloaded (429) at once, so a burst
        never builds an unbounded queue in Triton."""
        limit = (self.settings.encoder_max_in_flight if model == contract.SAM_ENCODER
                 else self.settings.max_in_flight_per_model)
        if self._in_flight.get(model, 0) >= limit:
            TRITON_ERRORS.labels(model=model, code=Overloaded.code).inc()
            raise Overloaded(f"{model} is busy ({limit} calls in flight); retry shortly", retry_after_s=1.0)
        self._in_flight[model] = self._in_flight.get(model, 0) + 1
        try:
            with stage(f"triton.{model}"):
                return await self._infer(model, inputs, outputs, timeout_s)
        finally:
            self._in_flight[model] -= 1

    async def _infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
                     timeout_s: float | None) -> dict[str, np.ndarray]:
        deadline_s = timeout_s or self.settings.timeout_s
        shared_outputs = await self._shared_output_sizes(model, inputs, outputs)
        for attempt in range(self.settings.retries + 1):
            started = time.perf_counter()
            request, regions = await self._request(inputs)
            try:
                wanted, output_regions = await self._requested_outputs(outputs, shared_outputs)
                regions.extend(output_regions.values())
                result = await self._client.infer(model, request, outputs=wanted, client_timeout=deadline_s)
                return {name: self._output(result, name, output_regions.get(name)) for name in outputs}
            except InferenceServerException as error:
                if regions and _lost_shared_memory(error):
                    # Triton restarted and forgot the regions: register them again on the next attempt
                    log.warning("Triton lost its shared-memory registrations (%s); registering again", error)
                    self._regions.forget_registrations()
                    if attempt < self.settings.retries:
                        continue
                translated = translate_error(model, error)
                TRITON_ERRORS.labels(model=model, code=translated.code).inc()
                if not _transient(error) or attempt == self.settings.retries:
                    raise translated from None
                await asyncio.sleep(self.settings.retry_backoff_s * (2 ** attempt) * random.uniform(0.5, 1.5))
                continue
            finally:
                for region in regions:
                    self._regions.release(region)
                TRITON_CALL_SECONDS.labels(model=model).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")

    async def _shared_output_sizes(self, model: str, inputs: Mapping[str, np.ndarray],
                                   outputs: Sequence[str]) -> dict[str, int]:
        """{output: bytes} for the asked outputs that Triton should write into shared memory: shared memory is on,
        the config fixes the output's size (a batched model's batch is the inputs' first axis) and it is at least
        `shared_memory_min_bytes` (a click's low_res_masks: 1 MB). Empty when the config cannot be read: the call
        itself then says why Triton is unavailable."""
        if self._regions is None:
            return {}
        try:
            config = await self._config(model)
        except ModelUnavailable:
            return {}
        batch = [len(next(iter(inputs.values())))] if config.get("max_batch_size", 0) > 0 and inputs else []
        sizes = {}
        for tensor in config.get("output", []):
            dims = batch + [int(d) for d in tensor["dims"]]
            dtype = triton_to_np_dtype(str(tensor.get("data_type", "")).removeprefix("TYPE_"))
            if tensor["name"] not in outputs or min(dims, default=0) < 0 or dtype in (None, np.object_):
                continue
            nbytes = int(np.prod(dims)) * np.dtype(dtype).itemsize
            if nbytes >= self.settings.shared_memory_min_bytes:
                sizes[tensor["name"]] = nbytes
        return sizes

    async def _requested_outputs(self, outputs: Sequence[str], shared: Mapping[str, int]
                                 ) -> tuple[list[grpcclient.InferRequestedOutput], dict[str, Region]]:
        """The call's requested outputs, those in `shared` backed by pooled shared-memory regions (returned too)."""
        wanted, regions = [], {}
        try:
            for name in outputs:
                if name in shared:
                    tensor, regions[name] = await self._regions.output(self._client, name, shared[name])
                else:
                    tensor = grpcclient.InferRequestedOutput(name)
                wanted.append(tensor)
        except InferenceServerException as error:
            for region in regions.values():
                self._regions.release(region)
            raise ModelUnavailable(f"Triton refused a shared-memory region: {error.message()}",
                                   retry_after_s=RETRY_AFTER_S) from None
        return wanted, regions

    @staticmethod
    def _output(result, name: str, region: Region | None) -> np.ndarray:
        if region is None:
            return result.as_numpy(name)
        tensor = result.get_output(name)
        return Regions.read(region, tuple(int(d) for d in tensor.shape), triton_to_np_dtype(tensor.datatype))

    async def _request(self, inputs: Mapping[str, np.ndarray]) -> tuple[list[grpcclient.InferInput], list]:
        """The request's inputs, the large ones in shared-memory regions when that is on (and those regions)."""
        request, regions = [], []
        min_bytes = self.settings.shared_memory_min_bytes
        try:
            for name, value in inputs.items():
                if self._regions is not None and value.dtype != np.object_ and value.nbytes >= min_bytes:
                    tensor, region = await self._regions.put(self._client, name, value,
                                                             np_to_triton_dtype(value.dtype))
                    regions.append(region)
                    request.append(tensor)
                else:
                    request.append(self._input(name, value))
        except InferenceServerException as error:
            for region in regions:
                self._regions.release(region)
            raise ModelUnavailable(f"Triton refused a shared-memory region: {error.message()}",
                                   retry_after_s=RETRY_AFTER_S) from None
        return request, regions

    async def stream(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
                     timeout_s: float | None = None) -> AsyncIterator[dict[str, np.ndarray]]:
        """One request to a decoupled model over a gRPC stream; yields each response's present outputs.

        Ends after the response that carries every name in `outputs`, or when the model ends the stream.
        Closing the iterator early (or cancelling the task) cancels the request in Triton. Not retried: a
        half-streamed answer cannot be replayed transparently.
        """
        request = {"model_name": model, "inputs": [self._input(name, value) for name, value in inputs.items()],
                   "outputs": [grpcclient.InferRequestedOutput(name) for name in outputs],
                   "enable_empty_final_response": True}

        async def one_request():
            yield request

        responses = self._stream_client.stream_infer(one_request(),
                                                     stream_timeout=timeout_s or self.settings.timeout_s)
        started, ended = time.perf_counter(), False
        try:
            async for result, error in responses:
                if error is not None:
                    translated = translate_error(model, error)
                    TRITON_ERRORS.labels(model=model, code=translated.code).inc()
                    raise translated
                present = {name: value for name in outputs if (value := result.as_numpy(name)) is not None}
                final = result.get_response().parameters.get("triton_final_response")
                ended = final is not None and final.bool_param
                if present:
                    yield present
                if ended or len(present) == len(outputs):
                    return
        finally:
            if ended:  # let the call end as Triton ends it: see _finish_stream
                await _finish_stream(responses)
            else:
                responses.cancel()
            TRITON_CALL_SECONDS.labels(model=model).observe(time.perf_counter() - started)

    async def max_batch_size(self, model: str) -> int:
        """The model's max_batch_size from its served config (cached); 0 means the model takes no batch axis."""
        return int((await self._config(model)).get("max_batch_size", 0))

    async def output_dims(self, model: str, output: str) -> list[int]:
        """Dims of one output in the model's served config (without the batch axis of a batched model)."""
        for tensor in (await self._config(model)).get("output", []):
            if tensor["name"] == output:
                return [int(d) for d in tensor["dims"]]
        raise ModelUnavailable(f"{model} serves no output named {output!r}")

    async def optional_inputs(self, model: str) -> frozenset[str]:
        """Inputs the model's served config lets a request leave out (`optional: true`)."""
        return frozenset(tensor["name"] for tensor in (await self._config(model)).get("input", [])
                         if tensor.get("optional", False))

    async def _config(self, model: str) -> dict:
        """The model's served config as JSON (cached once read)."""
        if model not in self._configs:
            try:
                config = await self._client.get_model_config(model, as_json=True, client_timeout=5.0)
            except InferenceServerException as error:
                raise translate_error(model, error) from None
            self._configs[model] = config["config"]
        return self._configs[model]

    async def models_ready(self, models: Sequence[str]) -> dict[str, bool]:
        """Readiness of each model; every model reads False when the server cannot be reached."""
        ready = {}
        for model in models:
            try:
                ready[model] = bool(await self._client.is_model_ready(model, client_timeout=2.0))
            except InferenceServerException:
                ready[model] = False
        return ready

    @staticmethod
    def _input(name: str, value: np.ndarray) -> grpcclient.InferInput:
        dtype = "BYTES" if value.dtype == np.object_ else np_to_triton_dtype(value.dtype)
        tensor = grpcclient.InferInput(name, list(value.shape), dtype)
        tensor.set_data_from_numpy(value)
        return tensor


async def _finish_stream(responses, timeout_s: float = 5.0) -> None:
    """Reads a stream to its end after the model's final response: Triton closes it once the client has half-closed
    (its request iterator ended). Cancelling it instead, or closing the channel under it, right after the final
    response kept a decoupled model (ladi_vton) referenced until Triton's 30 s exit timeout on shutdown (Triton
    2.51; tests/integration/conftest.py checks how long the session Triton takes to stop). Cancels only a stream
    that does not end within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in responses:
                pass
    except (TimeoutError, grpc.aio.AioRpcError, InferenceServerException):
        responses.cancel()


def _open(url: str) -> grpcclient.InferenceServerClient:
    """A client whose channel spreads calls round-robin over the addresses `url` resolves to (tritonclient's own
    defaults otherwise: unbounded message sizes, its keepalive)."""
    keepalive = KeepAliveOptions()
    return grpcclient.InferenceServerClient(url, channel_args=[
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.lb_policy_name", "round_robin"),
        # reconnect to a restarted Triton within ~2 s: gRPC's default backoff grows to 120 s between attempts, so
        # after a restart the first calls still failed "connection refused" for seconds to minutes
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ])


async def _close_later(client: grpcclient.InferenceServerClient, delay_s: float) -> None:
    try:
        await asyncio.sleep(delay_s)
    finally:
        await client.close()


def _transient(error: InferenceServerException) -> bool:
    status = str(error.status() or "")
    return "UNAVAILABLE" in status and not _queue_full(error)


def _lost_shared_memory(error: InferenceServerException) -> bool:
    return "shared memory region" in str(error.message() or "").lower()


def _queue_full(error: InferenceServerException) -> bool:
    return "maximum queue size" in str(error.message() or "").lower()


def translate_error(model: str, error: InferenceServerException):
    """Maps a tritonclient error onto our typed errors (the HTTP status follows from the type)."""
    status = str(error.status() or "")
    message = str(error.message() or error)
    if _queue_full(error):
        return Overloaded(f"{model} is busy (its queue is full); retry shortly", retry_after_s=1.0)
    if "INVALID_ARGUMENT" in status:
        return InvalidInput(f"{model} rejected the request: {message}")
    if "DEADLINE_EXCEEDED" in status:
        return ModelDeadlineExceeded(f"{model} did not answer before the deadline", retry_after_s=RETRY_AFTER_S)
    if "NOT_FOUND" in status or "unknown model" in message.lower():
        return ModelUnavailable(f"{model} is not loaded in Triton", retry_after_s=RETRY_AFTER_S)
    return ModelUnavailable(f"Triton is unavailable for {model}: {message}", retry_after_s=RETRY_AFTER_S)
