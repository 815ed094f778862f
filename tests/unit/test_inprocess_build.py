"""Building the in-process onnxruntime_cpu backend (snapfit/triton/inprocess_build.py), and where the launcher
puts it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from snapfit.triton import inprocess_build
from snapfit.triton.inprocess_build import LIBRARY_NAME, InprocessBuildError, build
from snapfit.triton.launcher import TritonLaunch, TritonLaunchError, prepare_backends

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ here")


@needs_compiler
def test_the_library_exports_the_backend_entry_points_and_is_built_once(tmp_path):
    library = build(tmp_path)
    assert library == tmp_path / LIBRARY_NAME
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True).stdout
    for entry in ("TRITONBACKEND_Initialize", "TRITONBACKEND_ModelInstanceInitialize",
                  "TRITONBACKEND_ModelInstanceExecute", "TRITONBACKEND_ModelInstanceFinalize"):
        assert f" T {entry}\n" in symbols
    built_at = library.stat().st_mtime_ns
    assert build(tmp_path).stat().st_mtime_ns == built_at  # same source and flags: not compiled again
    (tmp_path / f"{LIBRARY_NAME}.stamp").write_text("another source")
    assert build(tmp_path).stat().st_mtime_ns != built_at


def test_a_missing_compiler_or_a_failed_compile_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(inprocess_build.shutil, "which", lambda name: None)
    with pytest.raises(InprocessBuildError, match="no C\\+\\+ compiler"):
        build(tmp_path)
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.raises(InprocessBuildError, match="compiling inprocess.cc failed"):
        build(tmp_path)
    assert not (tmp_path / LIBRARY_NAME).exists()


@needs_compiler
def test_the_launcher_places_the_library_or_leaves_the_python_backend_runner_alone(tmp_path, monkeypatch):
    backends = tmp_path / "backends"
    prepare_backends(TritonLaunch(repository=tmp_path, backend_dir=backends))
    assert (backends / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    prepare_backends(TritonLaunch(repository=tmp_path, backend_dir=backends, cpu_runner="python-backend"))
    assert not (backends / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    assert (backends / "onnxruntime_cpu" / "model.py").is_symlink()
    monkeypatch.setenv("CXX", "false")  # in-process asked for but not buildable: the stub serves, with a warning
    prepare_backends(TritonLaunch(repository=tmp_path, backend_dir=backends))
    assert not (backends / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    with pytest.raises(TritonLaunchError, match="cpu_runner"):
        prepare_backends(TritonLaunch(repository=tmp_path, backend_dir=backends, cpu_runner="gpu"))
