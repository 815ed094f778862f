"""How close a model runs to the machine's peak: FLOPs per call from torch's flop counter, and matmul peaks.

    flops = count_flops(module, tensors)            # FLOPs of one forward pass (2 per multiply-add)
    peaks = measure_peaks()                         # [{"device": "cpu", "precision": "fp32", "library": ..., "gflops": ...}]
    add_efficiency(latency_rows, flop_counts, best_peaks(peaks))

The peak of a precision is the best matrix-multiply rate any of the libraries we serve with reached on this machine,
measured in the same run (square matrices, several sizes): fp32 and bf16 with torch.matmul, fp32 with ONNX Runtime's
MatMul and int8 with its MatMulInteger (what dynamic quantisation turns MatMul into), fp16 with torch on CUDA.
A model's efficiency is its achieved FLOP/s (FLOPs x batch / p50) over the peak of the precision it ran in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from benchmarks.report import format_value, markdown_table, register_section
from benchmarks.stats import LatencySummary, time_calls

PEAK_SECTION = "matmul_peak"

# which measured peak each latency variant is compared with
VARIANT_PRECISION = {"torch_fp32": "fp32", "torch_bf16": "bf16", "torch_fp16": "fp16", "ort_fp32": "fp32",
                     "ort_int8": "int8", "triton_fp32": "fp32", "triton_int8": "int8"}
CPU_SIZES = (1024, 2048)
GPU_SIZES = (4096, 8192)


def count_flops(module, inputs: Sequence) -> int:
    """FLOPs of `module(*inputs)` as counted by torch.utils.flop_counter (matmuls, convolutions, attention).

    Element-wise ops (activations, norms, softmax) are not counted, so this is a lower bound dominated by what
    runs on the matrix units; a multiply-add is 2 FLOPs. Attention is counted through its plain matmuls: the
    counter scores nn.MultiheadAttention's fused inference kernel and the CPU's fused scaled_dot_product_attention
    as 0 FLOPs, so both are switched to their unfused paths while counting (same arithmetic, same result).
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
            module(*inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return int(counter.get_total_flops())


def _matmul_rate(call, flops: float, max_seconds: float, synchronize=lambda: None) -> float:
    def timed() -> None:
        call()
        synchronize()

    seconds = time_calls(timed, warmup=1, iterations=20, max_seconds=max_seconds)
    return flops / LatencySummary.from_seconds(seconds).p50_s / 1e9


def torch_matmul_gflops(n: int, dtype_name: str, device: str = "cpu", max_seconds: float = 2.0) -> float:
    """GFLOP/s of torch.matmul on two n x n matrices of `dtype_name` (fp32, bf16, fp16) on `device`, p50 of calls.

    fp32 on CUDA is measured with TF32 off, so it is the IEEE fp32 rate the served fp32 models are held to.
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            return _matmul_rate(lambda: torch.matmul(a, b), 2.0 * n**3, max_seconds, synchronize)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _matmul_graph(n: int, integer: bool) -> bytes:
    """An ONNX graph C = A @ B for n x n inputs: MatMul (fp32) or MatMulInteger (uint8 x int8 -> int32)."""
    import onnx
    from onnx import TensorProto, helper

    a_type, b_type, c_type = ((TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if integer
                              else (TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT))
    node = helper.make_node("MatMulInteger" if integer else "MatMul", ["A", "B"], ["C"])
    graph = helper.make_graph([node], "matmul", [helper.make_tensor_value_info("A", a_type, [n, n]),
                                                 helper.make_tensor_value_info("B", b_type, [n, n])],
                              [helper.make_tensor_value_info("C", c_type, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort_matmul_gflops(n: int, precision: str, max_seconds: float = 2.0, threads: int | None = None) -> float:
    """GFLOP/s (GOP/s for int8) of ONNX Runtime's CPU MatMul (fp32) or MatMulInteger (int8) on n x n matrices."""
    import onnxruntime as ort

    if precision not in ("fp32", "int8"):
        raise ValueError(f"ONNX Runtime peaks are measured for fp32 and int8, not {precision!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    session = ort.InferenceSession(_matmul_graph(n, precision == "int8"), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if precision == "int8":
        feeds = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8), "B": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    else:
        feeds = {"A": rng.standard_normal((n, n), dtype=np.float32), "B": rng.standard_normal((n, n), dtype=np.float32)}
    return _matmul_rate(lambda: session.run(None, feeds), 2.0 * n**3, max_seconds)


def measure_peaks(device: str = "cpu", sizes: Sequence[int] | None = None, max_seconds: float = 2.0) -> list[dict]:
    """One row per (precision, library, size): {"device", "precision", "library", "n", "gflops", "error"}.

    CPU: fp32 and bf16 with torch, fp32 and int8 with ONNX Runtime. CUDA: fp32 (TF32 off), fp16, bf16 with torch.
    A measurement that cannot run here keeps its row with gflops None and the error.
    """
    sizes = tuple(sizes or (GPU_SIZES if device.startswith("cuda") else CPU_SIZES))
    plan: list[tuple[str, str]] = ([("fp32", "torch"), ("fp16", "torch"), ("bf16", "torch")]
                                   if device.startswith("cuda") else
                                   [("fp32", "torch"), ("bf16", "torch"), ("fp32", "onnxruntime"),
                                    ("int8", "onnxruntime")])
    rows = []
    for precision, library in plan:
        for n in sizes:
            row = {"device": device, "precision": precision, "library": library, "n": n}
            try:
                gflops = (torch_matmul_gflops(n, precision, device, max_seconds) if library == "torch"
                          else ort_matmul_gflops(n, precision, max_seconds))
                rows.append({**row, "gflops": gflops, "error": None})
            except Exception as error:  # noqa: BLE001 - e.g. no bf16 kernel; the other peaks still count
                rows.append({**row, "gflops": None, "error": f"{type(error).__name__}: {error}"})
    return rows


def best_peaks(peak_rows: Sequence[dict]) -> dict[str, float]:
    """precision -> the highest GFLOP/s any library reached at any size (precisions that never ran are absent)."""
    best: dict[str, float] = {}
    for row in peak_rows:
        if row.get("gflops"):
            best[row["precision"]] = max(best.get(row["precision"], 0.0), row["gflops"])
    return best


def efficiency(flops_per_call: float | None, p50_ms: float | None, peak_gflops: float | None) -> dict:
    """{"achieved_gflops", "peak_gflops", "peak_fraction"} for one call of `flops_per_call` taking `p50_ms`."""
    if not flops_per_call or not p50_ms or p50_ms <= 0:
        return {"achieved_gflops": None, "peak_gflops": peak_gflops, "peak_fraction": None}
    achieved = flops_per_call / (p50_ms / 1000) / 1e9
    fraction = achieved / peak_gflops if peak_gflops else None
    return {"achieved_gflops": achieved, "peak_gflops": peak_gflops,
            "peak_fraction": None if fraction is None or math.isnan(fraction) else fraction}


def add_efficiency(rows: list[dict], flops_per_item: dict[str, float], peaks: dict[str, float]) -> list[dict]:
    """Adds gflop_per_item, achieved_gflops, peak_gflops and peak_fraction to latency rows, in place.

    rows: model_latency rows (model, variant, batch, p50_ms); flops_per_item: model -> FLOPs of one item (one
    batch-1 call); peaks: precision -> GFLOP/s from `best_peaks`. Rows whose variant has no known precision or
    whose model was not counted get None.
    """
    for row in rows:
        per_item = flops_per_item.get(row["model"])
        peak = peaks.get(VARIANT_PRECISION.get(row["variant"], ""))
        row["gflop_per_item"] = per_item / 1e9 if per_item else None
        row.update(efficiency(per_item * row["batch"] if per_item else None, row.get("p50_ms"), peak))
    return rows


@register_section(PEAK_SECTION, "Matmul peak of this machine")
def render_matmul_peak(rows: list[dict], out_dir) -> str:
    """The measured peaks, the best of each precision marked; the denominators of the models' "of peak"."""
    if not rows:
        return "_no rows_"
    best = best_peaks(rows)
    table_rows = [{**row, "best": bool(row.get("gflops")) and row["gflops"] == best.get(row["precision"])}
                  for row in rows]
    note = ("Square n x n matrix products, p50 of up to 20 calls after a warm-up; 2 n^3 FLOPs (int8: operations) "
            "per product. Each precision's best row is the peak the models are compared with.")
    columns = [("device", "device", format_value), ("precision", "precision", format_value),
               ("library", "library", format_value), ("n", "n", format_value), ("GFLOP/s", "gflops", format_value),
               ("peak", "best", lambda v: "**peak**" if v else ""), ("error", "error", format_value)]
    return note + "\n\n" + markdown_table(table_rows, columns)
