"""Run an ONNX model's parity feeds on another kind of CPU, emulated by QEMU user mode (Debian's `qemu-user`).

`qemu-x86_64 -cpu Haswell python ...` runs this very environment as an AVX2 + FMA CPU without AVX-512 or
VNNI. QEMU's emulator implements no AVX-512 at all, so every emulated CPU takes ONNX Runtime's AVX2 (or
older) kernels, even on an AVX-512 host: exactly the machines whose int8 kernels can saturate. Emulation is
slow (roughly 20-50x), so it suits tiny models and small parity sets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.feed_runner import CPU_FLAGS_KEY, pack_calls, unpack_calls
from export.instruction_set import instruction_set
from export.parity import CpuCheck, ParityReport
from export.recorded_session import RecordingSession, ReplaySession

QEMU = "qemu-x86_64"
# QEMU CPU models by the instruction set ONNX Runtime will see on them (checked on every run). snapfit supports
# x86-64 with AVX2; Haswell is the oldest such CPU, and its kernels are those of every non-VNNI machine.
EMULATED_CPUS = {
    "Haswell": "avx2",  # AVX2 + FMA, no AVX-512, no VNNI: ORT's saturating uint8 x int8 kernel
}
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class EmulatedRun:
    cpu: str  # QEMU CPU model
    instruction_set: str  # from the features the emulated CPU reported (export.instruction_set's levels)
    cpu_flags: tuple[str, ...]  # those features, /proc/cpuinfo spelling
    outputs: list[dict[str, np.ndarray]]
    seconds: float


def qemu_path() -> str | None:
    return shutil.which(QEMU)


def run_feeds(model: Path, feeds: list[dict[str, np.ndarray]], cpu: str = "Haswell",
              timeout_s: float = 1800.0) -> EmulatedRun:
    """Runs `feeds` through `model` with ONNX Runtime on the emulated `cpu`; outputs in call order.

    Raises ExportError when QEMU is missing, the CPU model is unknown, or the run fails or times out.
    """
    if cpu not in EMULATED_CPUS:
        raise ExportError(f"unknown emulated CPU {cpu!r}; choose one of {', '.join(EMULATED_CPUS)}")
    qemu = qemu_path()
    if qemu is None:
        raise ExportError(f"{QEMU} is not installed (Debian: apt-get install qemu-user); "
                          "it is needed to check int8 parity on an emulated CPU")
    with tempfile.TemporaryDirectory(prefix="snapfit-emulated-") as tmp:
        calls_file, out_file = Path(tmp) / "calls.npz", Path(tmp) / "outputs.npz"
        np.savez(calls_file, **pack_calls(feeds))
        command = [qemu, "-cpu", cpu, sys.executable, "-m", "export.feed_runner", str(model), str(calls_file),
                   str(out_file)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT),
                                                                          os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ExportError(f"ONNX Runtime under {QEMU} -cpu {cpu} did not finish in {timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise ExportError(f"ONNX Runtime under {QEMU} -cpu {cpu} failed (exit {done.returncode}): "
                              + _last_lines(done.stderr))
        with np.load(out_file) as packed:
            outputs = unpack_calls(packed)
            flags = tuple(json.loads(str(packed[CPU_FLAGS_KEY])))
    reported = instruction_set(frozenset(flags))
    if reported != EMULATED_CPUS[cpu]:
        raise ExportError(f"{QEMU} -cpu {cpu} reported {reported} ({', '.join(flags)}), not the expected "
                          f"{EMULATED_CPUS[cpu]}; this QEMU cannot emulate that CPU")
    return EmulatedRun(cpu=cpu, instruction_set=reported, cpu_flags=flags, outputs=outputs,
                       seconds=time.perf_counter() - started)


def _last_lines(text: str, count: int = 5) -> str:
    # QEMU warns once per CPUID feature TCG cannot emulate (pcid, x2apic, ...): noise, not the failure
    lines = [line for line in text.splitlines() if "TCG doesn't support requested feature" not in line]
    return " | ".join(lines[-count:]) or "(no output)"


def emulated_parity(model: Path, recorder: RecordingSession, measure: Callable, cpu: str) -> CpuCheck:
    """Re-runs what `measure` ran through `recorder` on the emulated `cpu` and scores it with the same `measure`.

    model: the candidate ONNX file; recorder: the RecordingSession `measure` used natively (its feeds, in order).
    Returns the metrics measure() added, as a CpuCheck.
    """
    run = run_feeds(model, [feeds for _, feeds in recorder.calls], cpu)
    replay = ReplaySession(recorder.calls, run.outputs, [output.name for output in recorder.get_outputs()])
    scratch = ParityReport(model=model.name, precision="", source="", architecture="")
    measure(replay, scratch)
    return CpuCheck(cpu=cpu, instruction_set=run.instruction_set, seconds=run.seconds, metrics=scratch.metrics,
                    cpu_flags=run.cpu_flags)
