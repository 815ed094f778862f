"""Stop signals as KeyboardInterrupt, so the `finally` blocks and context managers of a command that started
servers stop exactly those servers (Python's default SIGTERM and SIGHUP end the process without unwinding)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def hang_up_as_terminate(signum, frame) -> None:
    """SIGHUP handled as SIGTERM. While uvicorn serves, it handles SIGTERM itself (a graceful shutdown, then the
    signal again with the handler from before it, outside any request) but not SIGHUP: a KeyboardInterrupt raised
    by a SIGHUP handler in the middle of a request is caught and logged by uvicorn as an error of that request, and
    the process serves on."""
    signal.raise_signal(signal.SIGTERM)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise KeyboardInterrupt (SIGINT already does); restored afterwards."""
    previous = {sig: signal.signal(sig, raise_keyboard_interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
