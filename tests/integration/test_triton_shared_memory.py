"""Large inputs and outputs through Triton's system shared memory give the same answers as tensors sent over gRPC,
survive a Triton that forgot its registrations, and leave nothing in /dev/shm once the client closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from orchestrator.clients.models import CLICK_OUTPUTS
from orchestrator.clients.triton import TritonClient
from orchestrator.settings import TritonSettings
from tests.integration import samples
from tests.integration.test_triton_models import encoder_output

pytestmark = pytest.mark.integration


def _decoder_feeds(tiny_repository) -> dict[str, np.ndarray]:
    return samples.sam_decoder_feeds(encoder_output(tiny_repository))


def test_shared_memory_tensors_answer_like_grpc_tensors_and_survive_lost_registrations(tiny_repository, triton_server):
    feeds = _decoder_feeds(tiny_repository)

    async def scenario():
        plain = TritonClient(TritonSettings(grpc_url=triton_server.grpc_url))
        # a low bound, so the tiny decoder's low_res_masks (fixed dims in its config) come back through a region too
        shared = TritonClient(TritonSettings(grpc_url=triton_server.grpc_url, shared_memory=True,
                                             shared_memory_min_bytes=1024))
        try:
            expected = await plain.infer("sam_decoder", feeds, CLICK_OUTPUTS)
            shared_outputs = await shared._shared_output_sizes("sam_decoder", feeds, CLICK_OUTPUTS)
            assert set(shared_outputs) == {"low_res_masks"}, shared_outputs
            first = await asyncio.gather(*(shared.infer("sam_decoder", feeds, CLICK_OUTPUTS) for _ in range(3)))
            prefix = shared._regions.prefix
            created = sorted(p.name for p in Path("/dev/shm").glob(f"{prefix}-*"))
            status = grpcclient.InferenceServerClient(triton_server.grpc_url)
            registered = status.get_system_shared_memory_status(as_json=True).get("regions", {})
            # the embedding (1x256x64x64 float32, 4 MB) went through regions; the small prompt arrays did not
            assert created and all(name in registered for name in created)
            status.unregister_system_shared_memory()  # as if Triton had restarted
            status.close()
            again = await shared.infer("sam_decoder", feeds, CLICK_OUTPUTS)
        finally:
            await plain.close()
            await shared.close()
        return expected, first, again, prefix

    expected, first, again, prefix = asyncio.run(scenario())
    for answer in (*first, again):
        for name in CLICK_OUTPUTS:
            np.testing.assert_array_equal(answer[name], expected[name])
    assert not list(Path("/dev/shm").glob(f"{prefix}-*"))
