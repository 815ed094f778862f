"""What the in-process `onnxruntime_cpu` backend (backends/onnxruntime_cpu/inprocess.cc) calls: Triton's raw
tensors to numpy and back, around snapfit/triton/onnx_runner.py.

Inputs arrive as read-only memoryviews of Triton's own buffers (a client's shared-memory region, or the gRPC
message), so a request's tensors are not copied on the way in; outputs go back as C-contiguous arrays that the
backend copies once, into the buffers Triton hands it. Data types travel as TRITONSERVER_DataType numbers.
"""

from __future__ import annotations

import json

import numpy as np

from snapfit.triton.onnx_runner import Failure, OnnxRunner

# TRITONSERVER_DataType (tritonserver.h) <-> numpy; BYTES (13) and BF16 (14) are not served by this runner
TRITON_TYPES = {1: np.bool_, 2: np.uint8, 3: np.uint16, 4: np.uint32, 5: np.uint64, 6: np.int8, 7: np.int16,
                8: np.int32, 9: np.int64, 10: np.float16, 11: np.float32, 12: np.float64}
TRITON_CODES = {np.dtype(dtype): code for code, dtype in TRITON_TYPES.items()}

RawInput = tuple[str, int, tuple[int, ...], memoryview]  # name, data type, shape, bytes
RawOutput = tuple[str, int, tuple[int, ...], np.ndarray]


def load(config_json: str, model_dir: str, version: int) -> OnnxRunner:
    """The runner of one model instance (RunnerConfigError when the model cannot be served)."""
    return OnnxRunner(json.loads(config_json), model_dir, version)


def run(runner: OnnxRunner, requests: list[tuple[list[RawInput], list[str]]]
        ) -> list[tuple[list[RawOutput] | None, str | None]]:
    """Each request: (its inputs, the outputs it asked for) -> (its outputs, None) or (None, why it failed)."""
    prepared = [_feeds(runner, inputs, asked) for inputs, asked in requests]
    ran = iter(runner.execute([request for request in prepared if not isinstance(request, Failure)]))
    return [_answer(request if isinstance(request, Failure) else next(ran)) for request in prepared]


def _feeds(runner: OnnxRunner, inputs: list[RawInput], asked: list[str]) -> tuple[dict, list[str]] | Failure:
    try:
        return {name: _array(code, shape, data) for name, code, shape, data in inputs}, asked
    except ValueError as error:
        return Failure(f"{runner.model_name}: {error}")


def _answer(result: dict[str, np.ndarray] | Failure) -> tuple[list[RawOutput] | None, str | None]:
    if isinstance(result, Failure):
        return None, result.message
    return [(name, TRITON_CODES[value.dtype], value.shape, value) for name, value in result.items()], None


def _array(code: int, shape: tuple[int, ...], data: memoryview) -> np.ndarray:
    """A numpy view of one input's bytes (a copy only where they are not aligned for the dtype)."""
    if code not in TRITON_TYPES:
        raise ValueError(f"data type {code} is not served by the onnxruntime_cpu backend")
    dtype = np.dtype(TRITON_TYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize != data.nbytes:
        raise ValueError(f"an input of shape {list(shape)} needs {count * dtype.itemsize} bytes, got {data.nbytes}")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    # HTTP's binary data may start at any offset; ONNX Runtime reads the pointer as the dtype's
    return array if array.flags.aligned else array.copy()
