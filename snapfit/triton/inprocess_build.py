"""Building the in-process `onnxruntime_cpu` backend (backends/onnxruntime_cpu/inprocess.cc) for this venv.

The library embeds the Python that runs this module, so it is compiled against that Python's headers and shared
libpython (pyenv and Debian builds ship both) with the system's C++ compiler, in about three seconds. A stamp
beside the library records the source and flags it was built from; an unchanged build is not repeated. Where a
prerequisite is missing the build says which and returns None: the launcher then lets Triton serve the same
runner through its Python backend (model.py), slower but the same answers.

    python -m snapfit.triton.inprocess_build FOLDER    # builds FOLDER/libtriton_onnxruntime_cpu.so
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "backends" / "onnxruntime_cpu" / "inprocess.cc"
LIBRARY_NAME = "libtriton_onnxruntime_cpu.so"  # the name Triton looks for in <backend dir>/onnxruntime_cpu/


class InprocessBuildError(RuntimeError):
    """The in-process backend cannot be built here (the message says what is missing or what failed)."""


def _python_build_inputs() -> tuple[str, str, str]:
    """(include folder, LIBDIR, libpython's soname) of this interpreter. Raises InprocessBuildError."""
    include = sysconfig.get_path("include")
    if not (Path(include) / "Python.h").exists():
        raise InprocessBuildError(f"no Python headers at {include} (Debian: python3-dev)")
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not soname or not (Path(libdir) / soname).exists():
        raise InprocessBuildError(f"Python {sys.version.split()[0]} has no shared libpython to embed")
    return include, libdir, soname


def _flags(include: str, libdir: str, soname: str) -> list[str]:
    library = soname.split(".so")[0].removeprefix("lib")  # python3.11
    return ["-O2", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", f'-DPYTHON_SONAME="{soname}"',
            f"-I{include}", str(SOURCE), f"-L{libdir}", f"-l{library}", f"-Wl,-rpath,{libdir}"]


def compile_command(output: Path) -> list[str]:
    """The compiler call for this interpreter. Raises InprocessBuildError when a prerequisite is missing."""
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise InprocessBuildError("no C++ compiler (g++) on PATH")
    return [compiler, *_flags(*_python_build_inputs()), "-o", str(output)]


def _stamp() -> str:
    """What a built library depends on: the source, this Python's headers and libpython, the flags (not the
    compiler: a library built here stays usable where no compiler is left)."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update("\0".join(_flags(*_python_build_inputs())).encode())
    return digest.hexdigest()


def build(folder: Path) -> Path:
    """folder/libtriton_onnxruntime_cpu.so, compiled unless its stamp says this source and this Python built it.
    Raises InprocessBuildError."""
    folder.mkdir(parents=True, exist_ok=True)
    target, stamp_file = folder / LIBRARY_NAME, folder / f"{LIBRARY_NAME}.stamp"
    stamp = _stamp()
    if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return target
    with tempfile.TemporaryDirectory(dir=folder) as scratch:  # built aside, then moved: a server never sees half a file
        partial = Path(scratch) / LIBRARY_NAME
        result = subprocess.run(compile_command(partial), capture_output=True, text=True)
        if result.returncode != 0:
            raise InprocessBuildError(f"compiling {SOURCE.name} failed:\n{result.stderr.strip()[-2000:]}")
        os.replace(partial, target)
    stamp_file.write_text(stamp)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m snapfit.triton.inprocess_build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to put the library: <Triton's backend directory>/"
                        "onnxruntime_cpu (the launcher builds its own when it starts Triton: "
                        ".tools/triton_backends/in-process/onnxruntime_cpu)")
    args = parser.parse_args(argv)
    try:
        print(build(args.folder))
    except InprocessBuildError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
