"""`python -m export.feed_runner MODEL.onnx CALLS.npz OUT.npz`: run recorded feeds through ONNX Runtime.

The process `export.emulation` starts under an emulated CPU. It imports only numpy and onnxruntime (torch
would take minutes to import under emulation) and writes every call's outputs to OUT.npz, with the x86 features
this process's CPU reports through CPUID (as numpy detected them; ONNX Runtime picks its kernels from the same
CPUID bits).

CALLS.npz holds `call{i}:{input name}` arrays and `calls` (how many); OUT.npz `call{i}:{output name}` and
`cpu_flags` (a JSON list in /proc/cpuinfo's spelling: avx2, fma, avx512f, avx512bw, avx512_vnni).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CPU_FLAGS_KEY = "cpu_flags"
# numpy's CPUID feature names -> /proc/cpuinfo's (export.instruction_set reads those)
_NUMPY_FEATURES = {"AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f", "AVX512BW": "avx512bw",
                   "AVX512VNNI": "avx512_vnni"}


def pack_calls(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Feeds of each call -> the flat dict np.savez stores."""
    packed = {"calls": np.array(len(feeds))}
    for i, call in enumerate(feeds):
        packed.update({f"call{i}:{name}": np.asarray(value) for name, value in call.items()})
    return packed


def unpack_calls(packed) -> list[dict[str, np.ndarray]]:
    """The inverse of pack_calls (also reads an opened np.load archive)."""
    calls: list[dict[str, np.ndarray]] = [{} for _ in range(int(packed["calls"]))]
    for key in packed.keys():
        if key.startswith("call") and key != "calls":
            index, name = key.split(":", 1)
            calls[int(index[len("call"):])][name] = packed[key]
    return calls


def run(model: Path, calls_file: Path, out_file: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    with np.load(calls_file) as packed:
        calls = unpack_calls(packed)
    outputs = [dict(zip(names, session.run(names, feeds))) for feeds in calls]
    np.savez(out_file, **pack_calls(outputs), **{CPU_FLAGS_KEY: np.array(json.dumps(reported_cpu_flags()))})


def reported_cpu_flags() -> list[str]:
    """The x86 features this process's CPU reports through CPUID (an emulated one's, under QEMU)."""
    from numpy.core._multiarray_umath import __cpu_features__

    return sorted(flag for feature, flag in _NUMPY_FEATURES.items() if __cpu_features__.get(feature))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m export.feed_runner MODEL.onnx CALLS.npz OUT.npz")
    run(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
