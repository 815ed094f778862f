"""Denoising schedulers built from the scheduler config stored with the weights (SD2-inpainting's PNDM config)."""

from __future__ import annotations

from typing import Any

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from snapfit.contract import TRYON_SCHEDULERS

SCHEDULERS = TRYON_SCHEDULERS

# stabilityai/stable-diffusion-2-inpainting scheduler/scheduler_config.json (ε-prediction).
SD2_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def make_scheduler(name: str, config: dict[str, Any]) -> SchedulerMixin:
    """A fresh scheduler (they hold per-run state): "ddim" as LaDI runs it, or "dpmpp" = DPM-Solver++ (2nd order)."""
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"unknown scheduler {name!r}; expected one of {SCHEDULERS}")


def step_kwargs(name: str) -> dict[str, Any]:
    """Extra `scheduler.step` arguments: DDIM with eta 0 (deterministic), as LaDI."""
    return {"eta": 0.0} if name == "ddim" else {}
