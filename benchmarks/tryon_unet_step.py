"""Time of one LaDI-VTON denoising step: the 31-channel UNet on a classifier-free-guidance batch of 2.

    python -m benchmarks.tryon_unet_step --profile full --dtype bf16 --repeats 5

Random weights (timing does not depend on them). Input (2, 31, latent_h, latent_w) and text (2, 77, D) as the
pipeline feeds them; runs on CUDA when available, else the CPU. Prints the median of `--repeats` timed steps after
one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(profile: str, dtype_name: str, repeats: int, device: torch.device) -> dict:
    """Builds the profile's UNet and returns timings in ms for one denoising step."""
    from tryon.components import build_unet
    from tryon.config import profile_config

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # `.to(dtype)` on a diffusers model warns even when nothing is wrong
    config = profile_config(profile)
    dtype = DTYPES[dtype_name]
    started = time.perf_counter()
    torch.manual_seed(0)
    with device:  # initialise where it runs: a CPU random init of the full UNet takes a minute
        unet = build_unet(config)
    unet = unet.to(dtype=dtype).eval()
    build_s = time.perf_counter() - started

    sample = torch.randn(2, config.unet_in_channels, *config.latent_size, device=device, dtype=dtype)
    text = torch.randn(2, 77, config.text_encoder.hidden_size, device=device, dtype=dtype)
    timestep = torch.tensor(500, device=device)
    times_ms = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            _synchronize(device)
            t0 = time.perf_counter()
            unet(sample, timestep, encoder_hidden_states=text)
            _synchronize(device)
            if i > 0:  # the first step is a warm-up
                times_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "profile": profile, "dtype": dtype_name, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(), "input": [2, config.unet_in_channels, *config.latent_size],
        "parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1), "build_s": round(build_s, 1),
        "repeats": repeats, "median_ms": round(statistics.median(times_ms), 1),
        "min_ms": round(min(times_ms), 1), "max_ms": round(max(times_ms), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps after one warm-up (default 5)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    result = measure(args.profile, args.dtype, args.repeats, device)
    print(f"{result['profile']} UNet ({result['parameters_m']}M params), {result['dtype']} on {result['device']} "
          f"({result['device_name']}, {result['threads']} threads), input {result['input']}: "
          f"{result['median_ms']} ms/step median of {result['repeats']} "
          f"(min {result['min_ms']}, max {result['max_ms']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
