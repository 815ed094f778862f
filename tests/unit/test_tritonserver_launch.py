"""The launcher builds the right tritonserver command line and refuses to start on an unexported repository."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from snapfit.triton.launcher import (
    TritonLaunch,
    TritonLaunchError,
    TritonPorts,
    TritonServer,
    command,
    missing_exports,
    port_is_free,
    prepare_backends,
)


def test_command_uses_cpu_configs_and_the_requested_ports(tmp_path):
    args = command(TritonLaunch(repository=tmp_path, ports=TritonPorts(9100, 9101, 9102)))
    assert "--model-config-name=cpu" in args
    assert {"--http-port=9100", "--grpc-port=9101", "--metrics-port=9102"} <= set(args)
    assert f"--model-repository={tmp_path.resolve()}" in args


def test_command_without_config_name_serves_the_gpu_config_pbtxt(tmp_path):
    args = command(TritonLaunch(repository=tmp_path, config_name=None))
    assert not any(a.startswith("--model-config-name") for a in args)


def unexported_repository(root: Path) -> Path:
    for model in ("sam_encoder", "clip_text"):
        (root / model / "1").mkdir(parents=True)
        (root / model / "config.pbtxt").write_text(f'name: "{model}"\n')
    return root


def test_unexported_models_are_listed(tmp_path):
    assert missing_exports(unexported_repository(tmp_path)) == ["sam_encoder", "clip_text"]


def test_starting_on_an_unexported_repository_says_to_export_first(tmp_path):
    server = TritonServer(TritonLaunch(repository=unexported_repository(tmp_path)))
    with pytest.raises(TritonLaunchError, match="snapfit export"):
        server.start()
    assert server.process is None


def test_missing_server_binary_points_at_make_env(tmp_path):
    with pytest.raises(TritonLaunchError, match="make env"):
        prepare_backends(TritonLaunch(repository=tmp_path, server_root=tmp_path / "nowhere"))


def test_backend_directory_links_the_generic_onnxruntime_runner(tmp_path):
    launch = TritonLaunch(repository=tmp_path, backend_dir=tmp_path / "backends")
    backends = prepare_backends(launch)
    runner = backends / "onnxruntime_cpu" / "model.py"
    assert runner.is_symlink() and "TritonPythonModel" in runner.read_text()
    assert (backends / "python" / "libtriton_python.so").exists()
    assert prepare_backends(launch) == backends  # idempotent


def exported_repository(root: Path) -> Path:
    (root / "clip_text" / "1").mkdir(parents=True)
    (root / "clip_text" / "config.pbtxt").write_text('name: "clip_text"\n')
    (root / "clip_text" / "1" / "model.onnx").write_bytes(b"not a model, never loaded")
    return root


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    """Else the new server dies binding it while another server on that port answers the readiness checks."""
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        assert not port_is_free(busy)
        server = TritonServer(TritonLaunch(repository=exported_repository(tmp_path), ports=TritonPorts(grpc=busy)))
        with pytest.raises(TritonLaunchError, match="already in use") as refused:
            server.start()
        assert str(busy) in str(refused.value)
    assert server.process is None
    assert port_is_free(busy)
