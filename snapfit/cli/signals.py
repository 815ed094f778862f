"""Stop signals as KeyboardInterrupt, so the `finally` blocks and context managers of a command that started
servers stop exactly those servers (Python's default SIGTERM and SIGHUP end the process without unwinding)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise KeyboardInterrupt (SIGINT already does); restored afterwards."""
    previous = {sig: signal.signal(sig, raise_keyboard_interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
