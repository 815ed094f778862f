"""Reduced-precision variants of an fp32 ONNX model: fp16 (GPUs) and int8 (VNNI CPUs).

int8 is static QDQ quantisation when the exporter supplies calibration feeds (convnets), else dynamic
quantisation of MatMul/Gemm (transformers). Inputs and outputs keep their fp32/uint8/int64 types, so every
variant serves through the same Triton config.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path

import numpy as np
import onnx

# Numerically fragile ops stay in fp32 (LayerNorm variance overflows in fp16; softmax and reductions
# lose too much); see docs/models.md.
FP16_KEEP_FP32_OPS = [
    "LayerNormalization", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Softmax", "Erf",
    "ArgMax", "Range", "Resize", "CumSum",
]
# Static int8 would put a QuantizeLinear on Softmax's output, snapping probabilities to a 1/255 grid.
STATIC_INT8_KEEP_FP32_OPS = ["Softmax"]

Feeds = Mapping[str, np.ndarray]


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def convert(fp32_path: Path, precision: Precision, out_path: Path,
            calibration: Sequence[Feeds] | None = None) -> Path:
    """Writes the `precision` variant of `fp32_path` to `out_path` (returns `fp32_path` itself for fp32).

    calibration: for int8 only, feeds (input name -> array) like those the model will serve, a small batch
    each (calibration memory grows with it); given, int8 is static QDQ quantisation with activation ranges
    from these feeds, otherwise dynamic quantisation of MatMul/Gemm.
    """
    if precision is Precision.fp32:
        return fp32_path
    if precision is Precision.fp16:
        return _to_fp16(fp32_path, out_path)
    if calibration:
        return _to_int8_static(fp32_path, out_path, calibration)
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
    # ConvInteger measured 4-6x slower than fp32 convolutions here (EfficientNetV2); convnets pass
    # calibration feeds and take the static path below.
    quantize_dynamic(
        str(fp32_path), str(out_path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )
    return out_path


def _to_int8_static(fp32_path: Path, out_path: Path, calibration: Sequence[Feeds]) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: Sequence[Feeds]) -> None:
            self._feeds: Iterator[Feeds] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            feeds = next(self._feeds, None)
            return None if feeds is None else dict(feeds)

    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        # The torch exporter shares equal conv biases through Identity nodes; the quantiser leaves a bias it
        # reaches that way in fp32 (51 convs of EfficientNetV2-S). Pre-processing folds them away.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        graph = onnx.load(str(prepared), load_external_data=False).graph
        keep_fp32 = [node.name for node in graph.node if node.op_type in STATIC_INT8_KEEP_FP32_OPS]
        # Measured on EfficientNetV2-S (docs/models.md): uint8 activations, since int8 ones ran ~2x *slower*
        # than fp32 in ORT 1.32 on a VNNI CPU; MinMax ranges, since Percentile/Entropy took 3-4.5x longer to
        # calibrate and lowered the mean probability error (0.008 -> 0.006) but not reliably the worst case.
        quantize_static(
            str(prepared), str(out_path), Reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_fp32,
        )
    return out_path
