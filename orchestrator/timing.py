"""Where a request's time goes: named stages, timed inside the request and sent back in a `Server-Timing` header.

    with stage("index"):
        hits = await asyncio.to_thread(index.search, ...)

The app's middleware starts an empty record per HTTP request (a context variable, so each request has its own and
the threads that `asyncio.to_thread` starts see it too) and, when the response starts, writes
`Server-Timing: triton.clip_text_embed;dur=31.04, index;dur=2.98, store;dur=0.88, app;dur=36.85`: each stage's
milliseconds (summed when a stage runs more than once), then `app`, the request inside this process until its
response started (for a streamed response, such as a try-on's progress, the time to its first byte). Browsers'
developer tools draw the header under a request's timing, and `snapfit bench` reads it to split an HTTP search into
the served models and this process's own work (benchmarks/search_overhead.py).

Stages used: `triton.<model>` (one inference call, retries included), `preprocess` (resizing and cutting out what a
model is sent), `preprocess.overlapped` (the same, run while a Triton call the request waits for anyway is under
way), `index` (FAISS), `store` (the catalog's metadata lookup), `masks` (SAM's masks upsampled to the photo),
`encode` (a click's masks written as run lengths or PNG). Outside a request (the CLI, tests) `stage` times
nothing; work that a request starts in the background (an import, a try-on) inherits its record and adds to it
after the header was sent, where nothing reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = b"server-timing"
TOTAL = "app"
_STAGES: ContextVar[dict[str, float] | None] = ContextVar("snapfit_request_stages", default=None)


def start_request() -> dict[str, float]:
    """A new, empty record of stage seconds for the calling task (the request), which `stage` adds to."""
    stages: dict[str, float] = {}
    _STAGES.set(stages)
    return stages


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Adds the block's wall-clock seconds to stage `name` of the current request, if there is one."""
    stages = _STAGES.get()
    if stages is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - started


def header_value(stages: dict[str, float], total_s: float) -> bytes:
    """The `Server-Timing` value: each stage in the order first timed, then `app` (the whole request), in ms."""
    parts = [f"{name};dur={seconds * 1000.0:.2f}" for name, seconds in stages.items()]
    parts.append(f"{TOTAL};dur={total_s * 1000.0:.2f}")
    return ", ".join(parts).encode("ascii")


def parse_header(value: str) -> dict[str, float]:
    """`Server-Timing` value -> {metric name: milliseconds}; metrics without a duration are left out."""
    durations = {}
    for metric in value.split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, number = param.partition("=")
            if key.strip() == "dur" and name:
                try:
                    durations[name] = float(number.strip().strip('"'))
                except ValueError:
                    pass
    return durations
