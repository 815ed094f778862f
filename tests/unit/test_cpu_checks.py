"""What export knows about CPUs, and its record/replay of parity calls: instruction-set levels from flags, the
exporting CPU's description, replay refusing calls it did not record, and clear errors without QEMU."""

from __future__ import annotations

import numpy as np
import pytest

from export import emulation
from export.errors import ExportError
from export.instruction_set import describe_cpu, instruction_set
from export.recorded_session import RecordingSession, ReplayMismatch, ReplaySession


@pytest.mark.parametrize("flags, level", [
    ({"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}, "avx512_vnni"),
    ({"avx2", "fma", "avx_vnni"}, "avx_vnni"),
    ({"avx2", "fma", "avx512f", "avx512bw"}, "avx512"),
    ({"avx2", "fma"}, "avx2"),
    ({"sse2"}, "unknown"),
])
def test_the_level_is_the_strongest_one_the_flags_cover(flags, level):
    assert instruction_set(frozenset(flags)) == level


def test_the_exporting_cpu_is_described_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU @ 2.00GHz\nflags\t\t: fpu sse2 avx2 fma avx512f\n")
    assert describe_cpu(cpuinfo) == {"model": "Test CPU @ 2.00GHz", "instruction_set": "avx2",
                                     "flags": ["avx2", "fma", "avx512f"]}


class EchoSession:
    """An ONNX Runtime session stand-in: output `y` = input `x` + 1."""

    def get_outputs(self):
        return [type("Output", (), {"name": "y"})()]

    def run(self, names, feeds):
        return [feeds["x"] + 1]


def test_a_replay_answers_the_recorded_calls_in_order_with_other_outputs():
    recorder = RecordingSession(EchoSession())
    assert recorder.run(None, {"x": np.zeros(2)})[0].tolist() == [1, 1]
    recorder.run(["y"], {"x": np.ones(2)})
    replay = ReplaySession(recorder.calls, [{"y": np.full(2, 7.0)}, {"y": np.full(2, 8.0)}], ["y"])
    assert [o.name for o in replay.get_outputs()] == ["y"]
    assert replay.run(None, {"x": np.zeros(2)})[0].tolist() == [7, 7]
    assert replay.run(["y"], {"x": np.ones(2)})[0].tolist() == [8, 8]
    with pytest.raises(ReplayMismatch, match="call 3 was not recorded"):
        replay.run(None, {"x": np.ones(2)})


def test_a_replay_refuses_feeds_that_were_not_recorded_and_is_an_export_error():
    recorder = RecordingSession(EchoSession())
    recorder.run(None, {"x": np.zeros(2)})
    replay = ReplaySession(recorder.calls, [{"y": np.zeros(2)}], ["y"])
    with pytest.raises(ExportError, match="other feeds"):
        replay.run(None, {"x": np.ones(2)})
    with pytest.raises(ReplayMismatch, match="1 recorded calls but 2 output sets"):
        ReplaySession(recorder.calls, [{"y": np.zeros(2)}] * 2, ["y"])


def test_without_qemu_an_emulated_check_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(emulation, "qemu_path", lambda: None)
    with pytest.raises(ExportError, match="qemu-x86_64 is not installed .*apt-get install qemu-user"):
        emulation.run_feeds(tmp_path / "model.onnx", [{"x": np.zeros(1)}])


def test_an_unknown_emulated_cpu_is_refused():
    with pytest.raises(ExportError, match="unknown emulated CPU 'Pentium'; choose one of Haswell"):
        emulation.run_feeds(None, [], cpu="Pentium")
