"""Parity metrics between torch and ONNX Runtime outputs, and the machine-readable report.

Every exporter calls :func:`check_thresholds` before a model file is moved into the repository,
so a model that disagrees with torch never replaces a good one.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from export.errors import ExportParityError


@dataclass
class Metric:
    """One parity measurement. `higher_is_better` decides how `threshold` is applied."""

    value: float
    threshold: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.value):
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold


def _failures(metrics: dict[str, Metric]) -> list[str]:
    return [f"{name}={m.value:.6g} (needs {'>=' if m.higher_is_better else '<='} {m.threshold:g})"
            for name, m in metrics.items() if not m.passed]


def _metrics_dict(metrics: dict[str, Metric]) -> dict:
    return {name: {**asdict(m), "passed": m.passed} for name, m in metrics.items()}


@dataclass
class CpuCheck:
    """The same parity metrics measured with ONNX Runtime on another kind of CPU (emulated by QEMU).

    cpu: the QEMU CPU model ("Haswell"); instruction_set: what ONNX Runtime sees there ("avx2").
    """

    cpu: str
    instruction_set: str
    seconds: float
    metrics: dict[str, Metric] = field(default_factory=dict)
    cpu_flags: tuple[str, ...] = ()  # what the emulated CPU reported through CPUID

    @property
    def passed(self) -> bool:
        return bool(self.metrics) and all(m.passed for m in self.metrics.values())

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "instruction_set": self.instruction_set, "cpu_flags": list(self.cpu_flags),
                "emulated_by": f"qemu-x86_64 -cpu {self.cpu}",
                "seconds": round(self.seconds, 1), "passed": self.passed, "metrics": _metrics_dict(self.metrics)}


@dataclass
class ParityReport:
    """What `snapfit export` writes next to each model as `parity.json`.

    quantization: how a reduced-precision variant was made (None for fp32); exporting_cpu: model, instruction
    set and int8/bf16 flags of the machine that ran the export and measured `metrics`; cpu_checks: the same
    metrics on emulated CPUs (`snapfit export --emulated-cpu`). The model is installed only if all pass.
    int8_gate: for `--precision auto`, the int8 export's quality on the demo catalog next to the fp32 one
    (export.int8_gate.GateResult.to_dict, plus `served`: the precision installed because of it); None otherwise.
    demo_weights: for weights `snapfit up --demo-catalog` trained on the synthetic catalog (export.demo_models), the
    key of their cache folder; None for every other export.
    """

    model: str
    precision: str
    source: str  # checkpoint path, pretrained tag, or "random-init"
    architecture: str
    profile: str = ""  # the `snapfit export --profile` that chose the architecture
    onnx_file: str = ""
    onnx_bytes: int = 0
    export_seconds: float = 0.0
    load_seconds: float = 0.0
    metrics: dict[str, Metric] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    quantization: dict | None = None
    exporting_cpu: dict = field(default_factory=dict)
    cpu_checks: list[CpuCheck] = field(default_factory=list)
    int8_gate: dict | None = None
    demo_weights: str | None = None

    def add(self, name: str, value: float, threshold: float, higher_is_better: bool) -> None:
        self.metrics[name] = Metric(float(value), float(threshold), higher_is_better)

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.metrics.values()) and all(check.passed for check in self.cpu_checks)

    def failures(self) -> list[str]:
        failures = _failures(self.metrics)
        for check in self.cpu_checks:
            failures += [f"on {check.cpu} ({check.instruction_set}): {failure}" for failure in _failures(check.metrics)]
        return failures

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["metrics"] = _metrics_dict(self.metrics)
        data["cpu_checks"] = [check.to_dict() for check in self.cpu_checks]
        return data

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def check_thresholds(report: ParityReport) -> None:
    """Raises ExportParityError naming every metric that missed its threshold."""
    if not report.metrics:
        raise ExportParityError(f"{report.model}: no parity metric was measured")
    failures = report.failures()
    if failures:
        raise ExportParityError(
            f"{report.model} ({report.precision}) failed its parity check against torch: "
            + "; ".join(failures)
            + ". The ONNX file was not written to the repository.",
            report=report,
        )


def software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute elementwise difference; inf when shapes differ."""
    if reference.shape != candidate.shape:
        return float("inf")
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)), initial=0.0))


def min_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Smallest row-wise cosine similarity of two NxD arrays; -inf when shapes differ."""
    if reference.shape != candidate.shape:
        return float("-inf")
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(np.sum(a * b, axis=1) / np.maximum(denom, 1e-12)))


def topk_overlap(queries_ref: np.ndarray, gallery_ref: np.ndarray,
                 queries_cand: np.ndarray, gallery_cand: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the reference top-k gallery items (by inner product) that the candidate also ranks top-k.

    queries_*: QxD, gallery_*: GxD, all L2-normalised. Returns a value in [0, 1].
    """
    k = min(k, len(gallery_ref))
    ref = np.argsort(-(queries_ref @ gallery_ref.T), axis=1)[:, :k]
    cand = np.argsort(-(queries_cand @ gallery_cand.T), axis=1)[:, :k]
    return float(np.mean([len(set(r) & set(c)) / k for r, c in zip(ref, cand)]))


def mask_iou(reference_logits: np.ndarray, candidate_logits: np.ndarray, threshold: float = 0.0) -> float:
    """Smallest IoU over masks of the binarised logits (SAM thresholds mask logits at 0).

    Both arrays: ...xHxW. Masks empty in both count as IoU 1.
    """
    if reference_logits.shape != candidate_logits.shape:
        return 0.0
    ref = reference_logits.reshape(-1, *reference_logits.shape[-2:]) > threshold
    cand = candidate_logits.reshape(-1, *candidate_logits.shape[-2:]) > threshold
    inter = np.logical_and(ref, cand).sum(axis=(1, 2))
    union = np.logical_or(ref, cand).sum(axis=(1, 2))
    ious = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(ious.min())
