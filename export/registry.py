"""Every Triton model that `snapfit export` can build, by name, in export order.

Entries are "module:function" strings resolved on use, so `snapfit --help` does not import torch.
Each function takes an ExportRequest and a `step(description)` progress callback and returns a ParityReport.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from snapfit import contract

EXPORTERS: dict[str, str] = {
    contract.SAM_ENCODER: "export.sam:export_encoder",
    contract.SAM_DECODER: "export.sam:export_decoder",
    contract.CLIP_IMAGE: "export.clip:export_image",
    contract.CLIP_TEXT: "export.clip:export_text",
    contract.TRYON_CLASSIFIER: "export.classifier:export_classifier",
}


def resolve(model: str) -> Callable:
    module_name, function_name = EXPORTERS[model].split(":")
    return getattr(importlib.import_module(module_name), function_name)
