"""Time of whole try-ons with the full-size LaDI-VTON architecture (random weights: timing does not depend on them).

    python -m benchmarks.tryon_image --device cuda --dtype fp16 --json runs/tryon_image.json

Measures, on one 512x384 person: 50 DDIM steps with a new garment (CLIP-H + adapter + text encoder run),
the same again with the garment's conditioning cached, and 20 DPM-Solver++ steps. Prints seconds per image and
per step, the device and the peak accelerator memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _inputs(config, garment_key: str):
    from tryon.pipeline import TryOnInputs

    rng = np.random.default_rng(0)
    height, width = config.frame_hw
    mask = np.zeros((height, width), bool)
    mask[height // 5: height * 3 // 5, width // 4: width * 3 // 4] = True
    return TryOnInputs(person=rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
                       garment=rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
                       pose_map=np.zeros((18, height, width), np.float32), inpaint_mask=mask,
                       category="upper_body", garment_key=garment_key)


def measure(profile: str, device: str, dtype_name: str) -> dict:
    from tryon.components import build_random_components
    from tryon.config import profile_config
    from tryon.pipeline import LadiVtonPipeline, TryOnOptions

    config = profile_config(profile)
    started = time.perf_counter()
    pipeline = LadiVtonPipeline(build_random_components(config, 0), config, device, DTYPES[dtype_name])
    build_s = time.perf_counter() - started

    def timed(options: TryOnOptions, garment_key: str) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        began = time.perf_counter()
        pipeline(_inputs(config, garment_key), options)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - began

    timed(TryOnOptions(steps=2), "warm-up")
    runs = {
        "ddim50_new_garment_s": timed(TryOnOptions(steps=50, scheduler="ddim"), "garment-a"),
        "ddim50_cached_garment_s": timed(TryOnOptions(steps=50, scheduler="ddim"), "garment-a"),
        "dpmpp20_cached_garment_s": timed(TryOnOptions(steps=20, scheduler="dpmpp"), "garment-a"),
    }
    result = {"profile": profile, "frame_hw": list(config.frame_hw), "device": device, "dtype": dtype_name,
              "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
              "torch": torch.__version__, "build_s": round(build_s, 2),
              **{k: round(v, 3) for k, v in runs.items()},
              "ddim_s_per_step_cached": round(runs["ddim50_cached_garment_s"] / 50, 4)}
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = measure(args.profile, args.device, args.dtype if args.device != "cpu" or args.dtype != "fp16" else "fp32")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
