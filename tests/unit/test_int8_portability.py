"""int8 exports hold their parity thresholds on CPUs without VNNI: checked under QEMU user-mode emulation.

QEMU emulates no AVX-512, so `qemu-x86_64 -cpu Haswell` makes ONNX Runtime take its AVX2 uint8 x int8 kernel,
whose pairwise int16 sums saturate, on any host. The first test proves the emulated CPU really is that kernel;
the second exports every tiny model as int8 exactly as a user would, with the AVX2 check on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from export import emulation
from export.errors import ExportError
from export.instruction_set import describe_cpu
from export.registry import EXPORTERS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(emulation.qemu_path() is None,
                       reason="qemu-x86_64 is not installed (Debian package qemu-user; `make env` installs it where "
                              "apt-get can), so int8 cannot be checked on an emulated AVX2 CPU here"),
]

K = 64  # inner dimension: 32 pairs of products per output


def _matmul_integer(path: Path) -> Path:
    """A graph computing MatMulInteger(a: uint8 [1, K], b: int8 [K, 1]) -> int32 [1, 1]."""
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "pairs",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, K]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [K, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_emulated_haswell_adds_uint8_int8_products_in_saturating_int16(tmp_path):
    model = _matmul_integer(tmp_path / "pairs.onnx")
    weights = {"8-bit max": 127, "8-bit min": -128, "reduced max": 64, "reduced min": -64}
    feeds = [{"a": np.full((1, K), 255, np.uint8), "b": np.full((K, 1), w, np.int8)} for w in weights.values()]
    run = emulation.run_feeds(model, feeds, cpu="Haswell")
    # the emulated CPU itself reports AVX2 and FMA through CPUID, and no AVX-512 or VNNI
    assert {"avx2", "fma"} <= set(run.cpu_flags) and not {"avx512f", "avx512_vnni"} & set(run.cpu_flags)
    assert run.instruction_set == "avx2"
    sums = [int(out["y"][0, 0]) for out in run.outputs]
    # 255 * 127 * 2 = 64770 and 255 * -128 * 2 = -65280 do not fit int16: each of the 32 pairs is clipped
    assert sums[:2] == [32767 * (K // 2), -32768 * (K // 2)]
    assert sums[0] != 255 * 127 * K
    # ONNX Runtime's reduced range [-64, 64] keeps a pair within +-32640: exact, as on a VNNI CPU
    assert sums[2:] == [255 * 64 * K, -255 * 64 * K]


# QEMU's speed on ONNX Runtime's int8 kernels depends on the host far more than the usual 20-50x suggests: a 2-core
# AMD EPYC ran every emulated export in about 100 s, while on a 2-core Xeon (AVX-512 + AMX, 2026-12-06) the
# classifier took 17 s, CLIP text 20 s, the SAM decoder 73 s, CLIP image 265 s and the SAM encoder over 15 minutes.
# So the models are exported one by one, cheapest first, within one budget for all of them: once it is spent the
# model being exported is stopped and the rest skip, each saying so, instead of holding `make test` for half an hour.
EMULATED_ORDER = ("tryon_classifier", "clip_text", "sam_decoder", "clip_image", "sam_encoder")
EMULATED_EXPORT_BUDGET_S = 240.0


@pytest.fixture(scope="module")
def emulation_budget() -> dict:
    """What is left of EMULATED_EXPORT_BUDGET_S for this module's emulated exports, and the model that ran out."""
    return {"left_s": EMULATED_EXPORT_BUDGET_S, "ran_out": None}


def _run_within(command: list[str], budget_s: float) -> subprocess.CompletedProcess | None:
    """Runs `command` in its own process group; past `budget_s` the whole group (the export and the qemu-x86_64
    it started) is killed and None returned."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def int8_weights(path: Path) -> list[np.ndarray]:
    """Every int8 initializer of an ONNX model (the quantised weights)."""
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == TensorProto.INT8]


def test_every_exporter_is_checked_under_emulation():
    assert sorted(EMULATED_ORDER) == sorted(EXPORTERS)


@pytest.mark.parametrize("model", EMULATED_ORDER)
def test_tiny_int8_export_passes_the_same_thresholds_on_an_emulated_avx2_cpu(model, tmp_path, emulation_budget):
    if emulation_budget["ran_out"]:
        pytest.skip(f"{model}: the {EMULATED_EXPORT_BUDGET_S:.0f} s budget for emulated int8 exports ran out while "
                    f"exporting {emulation_budget['ran_out']}: QEMU emulates ONNX Runtime's int8 kernels too "
                    "slowly on this host (minutes on others)")
    repository = tmp_path / "int8"
    command = [str(Path(sys.executable).with_name("snapfit")), "export", "--profile", "tiny", "--precision", "int8",
               "--repository", str(repository), "--emulated-cpu", "Haswell", "--only", model]
    started = time.monotonic()
    done = _run_within(command, emulation_budget["left_s"])
    emulation_budget["left_s"] -= time.monotonic() - started
    if done is None:
        emulation_budget["ran_out"] = model
        pytest.skip(f"the int8 export of {model} under qemu-x86_64 -cpu Haswell did not finish within what was left "
                    f"of the {EMULATED_EXPORT_BUDGET_S:.0f} s budget: QEMU emulates ONNX Runtime's int8 kernels too "
                    "slowly on this host (minutes on others)")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    host = describe_cpu()
    parity = json.loads((repository / model / "1" / "parity.json").read_text())
    assert parity["passed"], (model, parity)
    assert parity["quantization"]["reduce_range"] is True and parity["quantization"]["weight_type"] == "int8"
    assert parity["exporting_cpu"]["instruction_set"] == host["instruction_set"]
    [check] = parity["cpu_checks"]
    assert check["cpu"] == "Haswell" and check["instruction_set"] == "avx2" and check["passed"], (model, check)
    # every quantised weight lies in ONNX Runtime's reduced range, so no kernel can saturate
    weights = int8_weights(repository / model / "1" / "model.onnx")
    assert weights and all(-64 <= w.min() and w.max() <= 64 for w in weights), model
    # the emulated run scored every metric the native one did, against the same thresholds
    assert {name: m["threshold"] for name, m in check["metrics"].items()} == \
        {name: m["threshold"] for name, m in parity["metrics"].items()}


def test_a_model_onnx_runtime_cannot_run_under_emulation_is_a_clear_export_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ExportError, match=r"ONNX Runtime under qemu-x86_64 -cpu Haswell failed \(exit 1\)"):
        emulation.run_feeds(broken, [{"a": np.zeros((1, K), np.uint8)}])
