"""A real tritonserver on the tiny repository, started once for the integration tests and stopped by PID."""

from __future__ import annotations

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
        server.stop()


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
