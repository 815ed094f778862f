"""Reduced-precision variants of an fp32 ONNX model: fp16 (GPUs) and int8 (CPUs).

int8 is static QDQ quantisation when the exporter supplies calibration feeds (convnets), else dynamic
quantisation of MatMul/Gemm (transformers). Inputs and outputs keep their fp32/uint8/int64 types, so every
variant serves through the same Triton config.

int8 must hold on every x86 CPU, not just the exporting one: ONNX Runtime multiplies uint8 activations by int8
weights with VNNI where the CPU has it (exact int32 sums) and with AVX2/AVX-512 `vpmaddubsw` where it does not,
which adds each pair of products into a saturating int16. With full 8-bit weights (|w| <= 127) a pair reaches
2 * 255 * 127 = 64770 and clips, so the same model lost its parity on AVX2 machines (tiny clip_text cosine 0.972,
sam_decoder mask IoU 0.28). Both recipes therefore quantise weights to ONNX Runtime's reduced range [-64, 64]
(`reduce_range`): a pair is at most 2 * 255 * 64 = 32640 in magnitude, every kernel computes the same exact
sums, and the outputs are identical on AVX2, AVX-512 and VNNI CPUs. Measured in docs/models.md: no speed cost on
a VNNI CPU (same kernel), and uint8 x uint8 weights, the other fix ONNX Runtime's guide names, ran 1.4-2.4x slower
there.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
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


@dataclass(frozen=True)
class Int8Recipe:
    """How an fp32 graph becomes int8 (recorded in parity.json as `quantization`).

    method: "dynamic" (MatMul/Gemm weights, activations quantised per call) or "static" (QDQ, calibrated).
    weight_type / activation_type: "int8" or "uint8". reduce_range: int8 weights stay within [-64, 64], so that
    two uint8 x int8 products always fit the int16 that non-VNNI x86 kernels add them in.
    """

    method: str
    weight_type: str
    activation_type: str
    per_channel: bool
    reduce_range: bool

    def to_dict(self) -> dict:
        return asdict(self)


def recipe_label(recipe: dict) -> str:
    """A one-line description of a recorded Int8Recipe (parity.json's `quantization`)."""
    bits = 7 if recipe.get("reduce_range") else 8
    method = "static QDQ" if recipe.get("method") == "static" else recipe.get("method", "?")
    per_channel = " per channel" if recipe.get("per_channel") else ""
    return (f"{method}, {bits}-bit {recipe.get('weight_type', '?')} weights{per_channel}, "
            f"{recipe.get('activation_type', '?')} activations")


DYNAMIC_INT8 = Int8Recipe(method="dynamic", weight_type="int8", activation_type="uint8", per_channel=True,
                          reduce_range=True)
STATIC_INT8 = Int8Recipe(method="static", weight_type="int8", activation_type="uint8", per_channel=True,
                         reduce_range=True)


def int8_recipe(calibrated: bool, overrides: Mapping[str, object] | None = None) -> Int8Recipe:
    """The recipe `convert` applies to int8: static when calibration feeds are given; `overrides` change fields
    of it (benchmarks/int8_recipes.py compares {"reduce_range": False} and {"weight_type": "uint8"})."""
    return replace(STATIC_INT8 if calibrated else DYNAMIC_INT8, **dict(overrides or {}))


def description(precision: Precision, calibrated: bool,
                int8_overrides: Mapping[str, object] | None = None) -> dict | None:
    """How `convert` makes `precision` (parity.json's `quantization`): None for fp32."""
    if precision is Precision.fp32:
        return None
    if precision is Precision.fp16:
        return {"method": "fp16", "keep_fp32_ops": FP16_KEEP_FP32_OPS}
    return int8_recipe(calibrated, int8_overrides).to_dict()


def _quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def convert(fp32_path: Path, precision: Precision, out_path: Path,
            calibration: Sequence[Feeds] | None = None,
            int8_overrides: Mapping[str, object] | None = None) -> Path:
    """Writes the `precision` variant of `fp32_path` to `out_path` (returns `fp32_path` itself for fp32).

    calibration: for int8 only, feeds (input name -> array) like those the model will serve, a small batch
    each (calibration memory grows with it); given, int8 is static QDQ quantisation with activation ranges
    from these feeds, otherwise dynamic quantisation of MatMul/Gemm. int8_overrides: see int8_recipe.
    """
    if precision is Precision.fp32:
        return fp32_path
    if precision is Precision.fp16:
        return _to_fp16(fp32_path, out_path)
    recipe = int8_recipe(bool(calibration), int8_overrides)
    if calibration:
        return _to_int8_static(fp32_path, out_path, calibration, recipe)
    return _to_int8(fp32_path, out_path, recipe)


def _to_fp16(fp32_path: Path, out_path: Path) -> Path:
    # onnxruntime's copy of the converter; onnxconverter_common 1.16 crashes on the ViT graphs
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_KEEP_FP32_OPS)
    onnx.save_model(converted, str(out_path))
    return out_path


def _to_int8(fp32_path: Path, out_path: Path, recipe: Int8Recipe) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    # Signed 7-bit weights with per-channel scales (see the module docstring). Only MatMul/Gemm: dynamic
    # ConvInteger measured 4-6x slower than fp32 convolutions here (EfficientNetV2); convnets pass
    # calibration feeds and take the static path below.
    quantize_dynamic(
        str(fp32_path), str(out_path), weight_type=_quant_type(recipe.weight_type), per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )
    return out_path


def _to_int8_static(fp32_path: Path, out_path: Path, calibration: Sequence[Feeds], recipe: Int8Recipe) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
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
            str(prepared), str(out_path), Reader(calibration), quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
            weight_type=_quant_type(recipe.weight_type), activation_type=_quant_type(recipe.activation_type),
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_fp32,
        )
    return out_path
