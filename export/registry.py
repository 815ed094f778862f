"""Every Triton model that `snapfit export` can build, by name, in export order.

Entries are "module:function" strings resolved on use, so `snapfit --help` does not import torch.
Each function takes an ExportRequest and a `step(description)` progress callback and returns a ParityReport.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

EXPORTERS: dict[str, str] = {
    "sam_encoder": "export.sam:export_encoder",
    "sam_decoder": "export.sam:export_decoder",
    "clip_image": "export.clip:export_image",
    "clip_text": "export.clip:export_text",
    "tryon_classifier": "export.classifier:export_classifier",
}


def resolve(model: str) -> Callable:
    module_name, function_name = EXPORTERS[model].split(":")
    return getattr(importlib.import_module(module_name), function_name)
