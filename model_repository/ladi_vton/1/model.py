"""Triton Python model `ladi_vton`: a LaDI-VTON try-on, decoupled so clients follow it step by step.

Tensors are documented in tryon/serving.py and docs/tryon.md. For every denoising step the model sends a
response with `step` and `total_steps`; the last response also carries `image` (uint8 [H, W, 3], the person's
size) and then the final flag. A request the client cancels (closing its stream) stops at the next step.
Bad tensors get an INVALID_ARG error response; the model keeps serving.

Weights: `weights_dir` (relative to this folder unless absolute) in the layout of tryon/weights.py;
parameters in the config choose the dataset (dresscode | vitonhd), device (auto | cpu | cuda) and dtype
(fp16 | bf16 | fp32; warping always runs in fp32).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # only importable inside Triton's Python backend stub
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args):
        import torch

        from tryon.pipeline import LadiVtonPipeline
        from tryon.serving import TryOnServing

        config = json.loads(args["model_config"])
        self.input_names = [tensor["name"] for tensor in config["input"]]  # the config is the contract
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        weights_dir = os.path.join(version_dir, parameters.get("weights_dir", "weights"))
        device = parameters.get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[parameters.get("dtype", "fp32")]
        if device == "cpu" and dtype == torch.float16:
            dtype = torch.float32  # fp16 convolutions are not implemented / very slow on CPUs
        if "torch_threads" in parameters:
            torch.set_num_threads(int(parameters["torch_threads"]))
        if not os.path.isdir(weights_dir):
            raise pb_utils.TritonModelException(
                f"ladi_vton: {weights_dir} does not exist; place the LaDI-VTON weights there (README: Try-on) "
                f"or write the tiny test weights with `snapfit export --only ladi_vton`")
        started = time.perf_counter()
        pipeline = LadiVtonPipeline.from_weights(weights_dir, dataset=parameters.get("dataset", "dresscode"),
                                                 device=device, dtype=dtype)
        self.serving = TryOnServing(pipeline, pipeline.config.frame_hw)
        pb_utils.Logger.log_info(f"ladi_vton: loaded {weights_dir} on {device} ({dtype}) in "
                                 f"{time.perf_counter() - started:.1f} s; frame {pipeline.config.frame_hw}")

    def execute(self, requests):
        for request in requests:
            self._serve(request)
        return None

    def _serve(self, request) -> None:
        from tryon.errors import TryOnCancelled, TryOnInputError
        from tryon.serving import parse_request

        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            arrays = {}
            for name in self.input_names:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    arrays[name] = tensor.as_numpy()
            parsed = parse_request(arrays)

            def on_step(step: int, total: int) -> None:
                sender.send(pb_utils.InferenceResponse([_int32("step", step), _int32("total_steps", total)]))

            image = self.serving.run(parsed, on_step=on_step, cancelled=sender.is_cancelled)
            sender.send(pb_utils.InferenceResponse([_int32("step", parsed.steps), _int32("total_steps", parsed.steps),
                                                    pb_utils.Tensor("image", np.ascontiguousarray(image))]),
                        flags=final)
        except TryOnInputError as error:  # malformed tensors, or values outside snapfit.contract's limits
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                str(error), pb_utils.TritonError.INVALID_ARG)), flags=final)
        except TryOnCancelled:
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "cancelled by the client", pb_utils.TritonError.CANCELLED)), flags=final)
        except Exception as error:  # noqa: BLE001 - one failed request must not take the model down
            pb_utils.Logger.log_error(f"ladi_vton: request failed: {type(error).__name__}: {error}")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                f"try-on failed: {type(error).__name__}: {error}")), flags=final)


def _int32(name: str, value: int):
    return pb_utils.Tensor(name, np.array([value], dtype=np.int32))
