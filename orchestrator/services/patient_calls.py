"""Model calls that ride out a slow or restarting Triton: sized to end within the deadline, retried with backoff.

An import sends thousands of images through each model. One call of a large batch on a machine that is busy
with something else can outlast the call's deadline, and a Triton that restarts refuses calls for a while;
neither should end the import. `call_patiently` sends the images in chunks that the model finished well
within the deadline so far (`ChunkSizer`), and retries a chunk that timed out or found the model unavailable
or its queue full, with jittered exponential backoff, until the model has failed for `RetryPolicy.budget_s`
in a row. Only then does it raise, and the import stops in a resumable state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.errors import ModelDeadlineExceeded, ModelUnavailable, Overloaded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """budget_s: how long a model may keep failing (consecutively) before the caller gives up; backoff between
    attempts doubles from first_backoff_s up to max_backoff_s, each wait drawn from [half, all] of it."""

    budget_s: float = 600.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def backoff_s(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.first_backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)


class ChunkSizer:
    """How many images one call of a model may carry: as many as it finished in `share` of the deadline so far
    (from the seconds per image of its recent calls), between 1 and `largest`; halved after a missed deadline."""

    def __init__(self, largest: int, deadline_s: float, share: float = 0.5):
        self.largest = largest
        self.deadline_s = deadline_s
        self.share = share
        self.size = largest
        self._seconds_per_image: float | None = None

    def observe(self, images: int, seconds: float) -> None:
        per_image = seconds / max(images, 1)
        # a moving average: one fast call after a slow spell should not at once send the largest chunk again
        previous = self._seconds_per_image
        self._seconds_per_image = per_image if previous is None else 0.5 * previous + 0.5 * per_image
        fitting = int(self.share * self.deadline_s / max(self._seconds_per_image, 1e-6))
        self.size = max(1, min(self.largest, fitting))

    def missed_deadline(self) -> None:
        self.size = max(1, self.size // 2)


async def call_patiently(model: str, call: Callable[[list[np.ndarray]], Awaitable[np.ndarray]],
                         images: Sequence[np.ndarray], sizer: ChunkSizer, policy: RetryPolicy,
                         on_wait: Callable[[str | None], None] = lambda message: None) -> np.ndarray:
    """`call` over `images` in chunks of `sizer.size`, results concatenated along axis 0 in order.

    A chunk that fails with ModelUnavailable (Triton down, a missed deadline) or Overloaded (a full queue) is
    sent again after a backoff; `on_wait` gets a line saying so (and None once the model answers again).
    Raises ModelUnavailable once the model has failed for `policy.budget_s` without a success in between."""
    results: list[np.ndarray] = []
    start, attempt, failing_since = 0, 0, None
    while start < len(images):
        piece = list(images[start:start + sizer.size])
        started = time.monotonic()
        try:
            out = await call(piece)
        except (ModelUnavailable, Overloaded) as error:
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if isinstance(error, ModelDeadlineExceeded):
                sizer.missed_deadline()
            if now - failing_since >= policy.budget_s:
                raise ModelUnavailable(f"{model} kept failing for {now - failing_since:.0f} s "
                                       f"(last: {error.message})", retry_after_s=error.retry_after_s) from None
            delay = policy.backoff_s(attempt)
            attempt += 1
            message = (f"waiting for {model}: {error.message}; attempt {attempt + 1} in {delay:.1f} s "
                       f"(gives up after {policy.budget_s:.0f} s of failures)")
            log.warning(message)
            on_wait(message)
            await asyncio.sleep(delay)
            continue
        sizer.observe(len(piece), time.monotonic() - started)
        if failing_since is not None:
            on_wait(None)
        results.append(np.asarray(out))
        start += len(piece)
        attempt, failing_since = 0, None
    return np.concatenate(results) if results else np.asarray([])
