"""Where a model repository keeps what `snapfit export` writes, and what is missing from one.

Shared by the Triton launcher (which refuses to start on an unexported repository) and the exporters (which fill
it); pathlib and snapfit.contract only.
"""

from __future__ import annotations

from pathlib import Path

from snapfit import contract

VERSION = "1"
ONNX_FILE = "model.onnx"
PARITY_FILE = "parity.json"


def onnx_file(repository: Path, model: str) -> Path:
    return Path(repository) / model / VERSION / ONNX_FILE


def parity_file(repository: Path, model: str) -> Path:
    return Path(repository) / model / VERSION / PARITY_FILE


def tryon_weights_dir(repository: Path) -> Path:
    return Path(repository) / contract.LADI_VTON / VERSION / contract.TRYON_WEIGHTS_DIR


def has_tryon_weights(repository: Path) -> bool:
    folder = tryon_weights_dir(repository)
    return folder.is_dir() and any(folder.iterdir())


def missing_exports(repository: Path) -> list[str]:
    """Models of `repository` that have a config folder but nothing exported: no model.onnx, or no try-on weights."""
    repository = Path(repository)
    missing = [m for m in contract.ONNX_MODELS if (repository / m).is_dir() and not onnx_file(repository, m).exists()]
    if (repository / contract.LADI_VTON).is_dir() and not has_tryon_weights(repository):
        missing.append(contract.LADI_VTON)
    return missing
