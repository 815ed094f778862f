"""Fixtures shared by every test: free ports and the tiny model repository (exported once per session)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

# SIGTERM / SIGHUP tear the fixtures down (and stop their servers) instead of ending pytest at once
pytest_plugins = ["tests.support.stop_signals_plugin"]


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory) -> Path:
    """A model repository with every model exported in the tiny profile (fp32, random weights)."""
    from export.runner import export_models

    repository = tmp_path_factory.mktemp("tiny_repository")
    export_models(profile="tiny", repository=repository)
    return repository
