"""Typed errors of the try-on model core."""

from __future__ import annotations


class TryOnInputError(ValueError):
    """A try-on request is malformed (shape, dtype, category, steps, guidance, scheduler)."""


class TryOnCancelled(Exception):
    """The caller's `cancelled()` returned True; raised at the next denoising step."""

    def __init__(self, completed_steps: int, total_steps: int):
        super().__init__(f"try-on cancelled after {completed_steps} of {total_steps} steps")
        self.completed_steps = completed_steps
        self.total_steps = total_steps


class WeightsError(Exception):
    """A weights folder is incomplete or a checkpoint does not fit the model it is loaded into."""
