"""Which machine and software a benchmark ran on, and the folder name its results go under.

    info = machine_info()        # {"cpu_model": "Intel(R) Xeon(R) Processor @ 2.50GHz", "logical_cores": 2, ...}
    machine_id(info)             # "intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0"
                                 #   -> benchmarks/results/intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0/
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re

from export.instruction_set import cpu_model

# distribution names to try per reported package: the first one installed wins (wheels differ CPU vs GPU)
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss"),
    "numpy": ("numpy",),
    "tritonclient": ("tritonclient",),
}
# marketing words that make a CPU or GPU name long without telling machines apart
_NOISE_WORDS = {"r", "tm", "cpu", "processor", "core", "with", "radeon", "graphics"}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages benchmarks depend on; None for one that is not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package, distributions in _DISTRIBUTIONS.items():
        versions[package] = None
        for distribution in distributions:
            try:
                versions[package] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def _torch_threads_and_gpu() -> tuple[int | None, str | None]:
    try:
        import torch
    except ImportError:
        return None, None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return torch.get_num_threads(), gpu


def machine_info() -> dict:
    """CPU model, logical cores, torch threads, GPU name (None without CUDA) and package versions; JSON-ready."""
    torch_threads, gpu = _torch_threads_and_gpu()
    return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(), "torch_threads": torch_threads,
            "gpu": gpu, "platform": platform.platform(), "versions": package_versions()}


def _slug(name: str) -> str:
    words = re.split(r"[^a-z0-9.]+", name.lower())
    return "-".join(w.strip(".") for w in words if w.strip(".") and w not in _NOISE_WORDS)


# the libraries whose version changes model speed, as they appear in the id
_ID_LIBRARIES = (("torch", "torch"), ("onnxruntime", "ort"))


def machine_id(info: dict) -> str:
    """A short, filesystem-safe slug naming the machine and the speed-deciding libraries:
    `<cpu>-<cores>c-<gpu or "cpu">[-torch<version>][-ort<version>]`.

    e.g. "intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0", "amd-epyc-7r13-16c-nvidia-h200-torch2.11.0".
    Only [a-z0-9.-], no leading dot; the full version list is in `info["versions"]`.
    """
    cpu = _slug(info.get("cpu_model") or "") or "unknown"
    gpu = _slug(info.get("gpu") or "") or "cpu"
    versions = info.get("versions") or {}
    libraries = "".join(f"-{short}{_slug(versions[name].split('+')[0])}" for name, short in _ID_LIBRARIES
                        if versions.get(name))
    return f"{cpu}-{info.get('logical_cores') or 0}c-{gpu}{libraries}"
