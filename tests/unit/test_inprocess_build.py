"""Building the in-process onnxruntime_cpu backend (snapfit/triton/inprocess_build.py), and where the launcher
puts it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from snapfit.triton import inprocess_build, launcher
from snapfit.triton.inprocess_build import LIBRARY_NAME, InprocessBuildError, build
from snapfit.triton.launcher import TritonLaunch, TritonLaunchError, command, prepare_backends


def _can_build() -> bool:
    try:
        inprocess_build._python_build_inputs()
    except InprocessBuildError:
        return False
    return shutil.which("g++") is not None


needs_toolchain = pytest.mark.skipif(not _can_build(), reason="no g++, Python headers or shared libpython here")


@needs_toolchain
def test_the_library_exports_the_backend_entry_points_and_is_built_once(tmp_path):
    library = build(tmp_path)
    assert library == tmp_path / LIBRARY_NAME
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True).stdout
    for entry in ("TRITONBACKEND_Initialize", "TRITONBACKEND_ModelInstanceInitialize",
                  "TRITONBACKEND_ModelInstanceExecute", "TRITONBACKEND_ModelInstanceFinalize"):
        assert f" T {entry}\n" in symbols
    built_at = library.stat().st_mtime_ns
    assert build(tmp_path).stat().st_mtime_ns == built_at  # same source, Python and flags: not compiled again
    (tmp_path / f"{LIBRARY_NAME}.stamp").write_text("another source")
    assert build(tmp_path).stat().st_mtime_ns != built_at


@needs_toolchain
def test_the_source_compiles_without_warnings(tmp_path):
    command_line = inprocess_build.compile_command(tmp_path / LIBRARY_NAME)
    result = subprocess.run([*command_line, "-Werror"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@needs_toolchain
def test_a_missing_compiler_keeps_a_current_library_and_otherwise_says_why(tmp_path, monkeypatch):
    library = build(tmp_path)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(inprocess_build.shutil, "which", lambda name: None)
    assert build(tmp_path) == library  # built for this source and Python: no compiler needed
    (tmp_path / f"{LIBRARY_NAME}.stamp").write_text("another source")
    with pytest.raises(InprocessBuildError, match="no C\\+\\+ compiler"):
        build(tmp_path)
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.raises(InprocessBuildError, match="compiling inprocess.cc failed"):
        build(tmp_path)


@needs_toolchain
def test_each_runner_gets_its_own_backend_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "TOOLS_DIR", tmp_path / "tools")
    in_process = TritonLaunch(repository=tmp_path)
    stub = TritonLaunch(repository=tmp_path, cpu_runner="python-backend")
    in_process_dir, stub_dir = prepare_backends(in_process), prepare_backends(stub)
    assert in_process_dir != stub_dir
    assert (in_process_dir / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    assert not (stub_dir / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    for folder, launch in ((in_process_dir, in_process), (stub_dir, stub)):
        assert (folder / "onnxruntime_cpu" / "model.py").is_symlink()
        assert f"--backend-directory={folder.resolve()}" in command(launch)
    # a folder given explicitly (the container's /opt/tritonserver/backends) is used as it is
    given = TritonLaunch(repository=tmp_path, backend_dir=tmp_path / "given")
    assert prepare_backends(given) == tmp_path / "given"
    assert (tmp_path / "given" / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    # a library that is out of date and cannot be rebuilt is removed: the stub serves, with a warning
    (in_process_dir / "onnxruntime_cpu" / f"{LIBRARY_NAME}.stamp").write_text("another source")
    monkeypatch.setenv("CXX", "false")
    prepare_backends(in_process)
    assert not (in_process_dir / "onnxruntime_cpu" / LIBRARY_NAME).exists()
    with pytest.raises(TritonLaunchError, match="cpu_runner"):
        prepare_backends(TritonLaunch(repository=tmp_path, cpu_runner="gpu"))
