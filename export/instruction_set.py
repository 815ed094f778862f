"""Which x86 instruction sets this CPU offers, as far as ONNX Runtime's int8 kernels care.

ONNX Runtime (MLAS) picks its int8 GEMM/convolution kernels by CPU: VNNI (`vpdpbusd`) multiplies uint8 by int8 and
accumulates in int32 exactly, while AVX2 and AVX-512 without VNNI use `vpmaddubsw`, which adds two uint8 x int8
products into a *saturating* int16 (255 * 127 * 2 = 64770 > 32767). The same int8 model can therefore be accurate
on one machine and not on another; `parity.json` records which kind exported it.
"""

from __future__ import annotations

import platform
from pathlib import Path

# Strongest first: the first level whose flags are all present names the CPU.
LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("avx512_vnni", frozenset({"avx512f", "avx512bw", "avx512_vnni"})),
    ("avx_vnni", frozenset({"avx2", "avx_vnni"})),
    ("avx512", frozenset({"avx512f", "avx512bw"})),
    ("avx2", frozenset({"avx2", "fma"})),
    ("avx", frozenset({"avx"})),
    ("sse4_1", frozenset({"sse4_1"})),
)
# flags worth recording beside the level (the int8 and bf16 fast paths)
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                  "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The `flags` of the first processor in /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def instruction_set(flags: frozenset[str]) -> str:
    """The strongest level of LEVELS that `flags` covers, e.g. "avx512_vnni" or "avx2"; "unknown" otherwise."""
    for name, required in LEVELS:
        if required <= flags:
            return name
    return "unknown"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what `platform` knows (macOS, containers without it)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def describe_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """{"model": marketing name, "instruction_set": level, "flags": the RECORDED_FLAGS present}, JSON-ready."""
    flags = cpu_flags(cpuinfo)
    return {"model": cpu_model(cpuinfo), "instruction_set": instruction_set(flags),
            "flags": [flag for flag in RECORDED_FLAGS if flag in flags]}
