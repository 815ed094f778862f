"""The `onnxruntime_cpu` backend as a Python-based backend: snapfit/triton/onnx_runner.py in the Python backend's
stub process.

The Triton build that installs from PyPI has only the Python backend, so every `configs/cpu.pbtxt` says
`backend: "onnxruntime_cpu"`. Where the in-process library (inprocess.cc, built by snapfit/triton/launcher.py) is
in the backend's folder, Triton loads that instead and runs the same runner in its own process; this file serves
where it cannot be built (no C++ compiler or Python headers) and in the container image (docker/triton.Dockerfile).
The parameters it reads are listed in onnx_runner.py.
"""

from __future__ import annotations

import json

import triton_python_backend_utils as pb_utils

from snapfit.triton.onnx_runner import Failure, OnnxRunner, RunnerConfigError


class TritonPythonModel:
    def initialize(self, args):
        try:
            self.runner = OnnxRunner(json.loads(args["model_config"]), args["model_repository"], args["model_version"])
        except RunnerConfigError as error:
            raise pb_utils.TritonModelException(str(error)) from None

    def execute(self, requests):
        results = self.runner.execute([(self._feeds(request), list(request.requested_output_names()))
                                       for request in requests])
        return [self._response(result) for result in results]

    def _feeds(self, request) -> dict:
        """The request's inputs by name; optional ones it left out are absent."""
        tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in self.runner.input_names}
        return {name: tensor.as_numpy() for name, tensor in tensors.items() if tensor is not None}

    @staticmethod
    def _response(result):
        if isinstance(result, Failure):
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(result.message, pb_utils.TritonError.INVALID_ARG))
        tensors = [pb_utils.Tensor(name, value) for name, value in result.items()]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.runner = None
