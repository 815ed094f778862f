"""benchmarks.flops: FLOP counting, matmul peak rows, efficiency arithmetic (no timing assertions)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.flops import (
    PEAK_SECTION, VARIANT_PRECISION, add_efficiency, best_peaks, count_flops, efficiency, measure_peaks,
)
from benchmarks.report import write_report


def test_a_linear_layer_costs_two_flops_per_multiply_add():
    layer = torch.nn.Linear(64, 32, bias=False)
    assert count_flops(layer, [torch.zeros(5, 64)]) == 2 * 5 * 64 * 32


def test_a_convolution_is_counted_too():
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every output pixel of every output channel: 3 x 3 x 3 multiply-adds
    assert count_flops(conv, [torch.zeros(1, 3, 10, 10)]) == 2 * 8 * 10 * 10 * 3 * 3 * 3


def test_attention_is_counted_through_the_fused_kernels_too():
    attention = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    x = torch.zeros(2, 10, 64)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    projections = 2 * 20 * 64 * (3 * 64) + 2 * 20 * 64 * 64  # q/k/v in, out
    scores_and_mix = 2 * (2 * 2 * 4 * 10 * 10 * 16)  # q @ k^T and p @ v for 2 x 4 heads of 10 x 10, head dim 16
    assert count_flops(attention, [x, x, x]) == projections + scores_and_mix
    assert torch.backends.mha.get_fastpath_enabled() == fastpath  # restored afterwards


def test_cpu_peaks_cover_fp32_bf16_and_int8_with_torch_and_onnxruntime():
    rows = measure_peaks("cpu", sizes=[64], max_seconds=0.05)
    assert {(r["precision"], r["library"]) for r in rows} == {
        ("fp32", "torch"), ("bf16", "torch"), ("fp32", "onnxruntime"), ("int8", "onnxruntime")}
    for row in rows:
        assert set(row) == {"device", "precision", "library", "n", "gflops", "error"}
        assert row["n"] == 64 and row["error"] is None and row["gflops"] > 0
    assert set(best_peaks(rows)) == {"fp32", "bf16", "int8"}


def test_the_best_peak_of_a_precision_is_its_fastest_library_and_size():
    rows = [{"precision": "fp32", "gflops": 70.0}, {"precision": "fp32", "gflops": 100.0},
            {"precision": "bf16", "gflops": None}, {"precision": "int8", "gflops": 300.0}]
    assert best_peaks(rows) == {"fp32": 100.0, "int8": 300.0}


def test_efficiency_is_achieved_flops_over_the_peak():
    # 2 GFLOP in 10 ms = 200 GFLOP/s, of a 400 GFLOP/s peak
    assert efficiency(2e9, 10.0, 400.0) == {"achieved_gflops": pytest.approx(200.0), "peak_gflops": 400.0,
                                            "peak_fraction": pytest.approx(0.5)}
    assert efficiency(None, 10.0, 400.0)["peak_fraction"] is None
    assert efficiency(2e9, None, 400.0)["achieved_gflops"] is None
    assert efficiency(2e9, 10.0, None)["peak_fraction"] is None


def test_add_efficiency_uses_the_variants_precision_and_the_batch():
    rows = [{"model": "m", "variant": "ort_int8", "batch": 4, "p50_ms": 20.0},
            {"model": "m", "variant": "torch_bf16", "batch": 1, "p50_ms": 10.0},
            {"model": "other", "variant": "torch_fp32", "batch": 1, "p50_ms": 10.0}]
    add_efficiency(rows, {"m": 1e9}, {"int8": 400.0, "bf16": 100.0, "fp32": 50.0})
    assert rows[0]["achieved_gflops"] == pytest.approx(4 * 1e9 / 0.02 / 1e9)
    assert rows[0]["peak_fraction"] == pytest.approx(200.0 / 400.0)
    assert rows[1]["peak_fraction"] == pytest.approx(100.0 / 100.0)
    assert rows[2]["gflop_per_item"] is None and rows[2]["peak_fraction"] is None
    assert {"triton_fp32", "ort_int8", "torch_fp16"} <= set(VARIANT_PRECISION)


def test_the_peak_section_marks_each_precisions_best_row(tmp_path):
    rows = [{"device": "cpu", "precision": "fp32", "library": "torch", "n": 64, "gflops": 10.0, "error": None},
            {"device": "cpu", "precision": "fp32", "library": "onnxruntime", "n": 64, "gflops": 12.0, "error": None}]
    text = write_report({"sections": {PEAK_SECTION: rows}}, tmp_path).read_text()
    assert "## Matmul peak of this machine" in text
    assert "| cpu | fp32 | onnxruntime | 64 | 12 | **peak** |" in text
    assert "| cpu | fp32 | torch | 64 | 10 |  |" in text
