"""A real tritonserver on the tiny repository, started once for the integration tests and stopped by PID."""

from __future__ import annotations

import time

import pytest

from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer
from tests.conftest import free_port


@pytest.fixture(scope="session")
def triton_server(tiny_repository, tmp_path_factory):
    ports = TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())
    log_path = tmp_path_factory.mktemp("triton_logs") / "tritonserver.log"
    server = TritonServer(TritonLaunch(repository=tiny_repository, ports=ports), log_path=log_path)
    server.start()
    try:
        server.wait_until_ready(timeout_s=600)
        yield server
    finally:
        started = time.monotonic()
        server.stop()
        stopped_s = time.monotonic() - started
    # Triton unloads its models before it exits; a model something still references (a decoupled model's stream
    # cancelled right after its final response did, on Triton 2.51) holds the exit until its 30 s timeout, in every
    # `make test` and in every pod's shutdown. Stopping takes 1-4 s here otherwise.
    assert stopped_s < 20, f"tritonserver took {stopped_s:.0f} s to stop; see which model it waited for in {log_path}"


@pytest.fixture
def grpc_client(triton_server):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    yield client
    client.close()


@pytest.fixture
def http_client(triton_server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(triton_server.http_url, concurrency=8)
    yield client
    client.close()
