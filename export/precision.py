"""Reduced-precision variants of an fp32 ONNX model: fp16 (GPUs) and int8 dynamic quantisation (VNNI CPUs).

Inputs and outputs keep their fp32/uint8/int64 types, so every variant serves through the same Triton config.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import onnx

# Numerically fragile ops stay in fp32 (LayerNorm variance overflows in fp16; softmax and reductions
# lose too much); see docs/models.md.
FP16_KEEP_FP32_OPS = [
    "LayerNormalization", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Softmax", "Erf",
    "ArgMax", "Range", "Resize", "CumSum",
]


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def convert(fp32_path: Path, precision: Precision, out_path: Path) -> Path:
    """Writes the `precision` variant of `fp32_path` to `out_path` (returns `fp32_path` itself for fp32)."""
    if precision is Precision.fp32:
        return fp32_path
    if precision is Precision.fp16:
        return _to_fp16(fp32_path, out_path)
    return _to_int8(fp32_path, out_path)


def _to_fp16(fp32_path: Path, out_path: Path) -> Path:
    # onnxruntime's copy of the converter; onnxconverter_common 1.16 crashes on the ViT graphs
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_KEEP_FP32_OPS)
    onnx.save_model(converted, str(out_path))
    return out_path


def _to_int8(fp32_path: Path, out_path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Signed int8 weights with per-channel scales: accurate on VNNI CPUs. Only MatMul/Gemm: dynamic
    # ConvInteger measured 4-6x slower than fp32 convolutions here (EfficientNetV2), so convnets need
    # static QDQ quantisation with calibration data to gain from int8.
    quantize_dynamic(
        str(fp32_path), str(out_path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )
    return out_path
