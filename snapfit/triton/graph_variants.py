"""Variants of one ONNX graph that compute less: pruned to some outputs, with some inputs fixed to constants.

The CPU runner (backends/onnxruntime_cpu/model.py) serves them by request (its `output_sets` and
`zero_when_absent` parameters), and the benchmark's in-process baseline times the very variant a click runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def specialised_graph(path: str, inputs: Sequence[str], outputs: Sequence[str] | None = None,
                      constants: Mapping[str, np.ndarray] | None = None) -> bytes:
    """The ONNX graph at `path`, serialised: cut down to the nodes `outputs` depend on (None: every output), with
    the inputs in `constants` turned into initializers of those values, so ONNX Runtime folds at load time what
    only they feed. `inputs`: the graph's input names (the extraction keeps them)."""
    import onnx
    import onnx.numpy_helper
    import onnx.utils

    model = onnx.load(path)
    if outputs is not None:
        model = onnx.utils.Extractor(model).extract_model(list(inputs), list(outputs))
    if constants:
        fixed = {tensor.name for tensor in model.graph.input} & set(constants)
        kept = [tensor for tensor in model.graph.input if tensor.name not in fixed]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        model.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(constants[name]), name)
                                       for name in sorted(fixed))
    return model.SerializeToString()
