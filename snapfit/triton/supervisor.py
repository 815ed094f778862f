"""Keeping the tritonserver that `snapfit up` started running, as a process manager would.

When the server exits without being asked to (a crash, an out-of-memory kill), the supervisor stops what is left
of it (its Python-backend stubs), waits, and starts it again on the same ports, waiting longer after each failed
start (1 s doubling to `max_backoff_s`, back to 1 s once a server has run for `stable_after_s`). The
orchestrator stays up meanwhile: its calls answer 503 with Retry-After, /readyz says Triton is down, and it
recovers by itself once the server is back (the gRPC channel reconnects, shared-memory regions are registered
again). Only the server this supervisor started is ever stopped or restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from snapfit.triton.launcher import TritonLaunchError, TritonServer


class TritonSupervisor:
    """Watches `server` (already started and ready) on a background thread; `stop()` ends it for good."""

    def __init__(self, server: TritonServer, report: Callable[[str], None] = print, max_backoff_s: float = 30.0,
                 stable_after_s: float = 60.0, ready_timeout_s: float = 900.0, poll_s: float = 0.5):
        self.server = server
        self.report = report
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self.ready_timeout_s = ready_timeout_s
        self.poll_s = poll_s
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self) -> TritonSupervisor:
        self._thread = threading.Thread(target=self._watch, name="triton-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int | None:
        """Stops watching, then stops the server (and its stubs); returns its exit code."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ready_timeout_s + 60)
        return self.server.stop()

    def _watch(self) -> None:
        backoff_s = 1.0
        running_since = time.monotonic()
        while not self._stopping.wait(self.poll_s):
            process = self.server.process
            if process is not None and process.poll() is None:
                if time.monotonic() - running_since >= self.stable_after_s:
                    backoff_s = 1.0
                continue
            code = None if process is None else process.returncode
            self.server.stop()  # its stubs outlive a killed server
            self.report(f"tritonserver exited unexpectedly (exit code {code}); starting it again in "
                        f"{backoff_s:.0f} s. The API answers 503 until it is back")
            if self._stopping.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, self.max_backoff_s)
            try:
                self.server.start()
                if not self.server.wait_until_ready(self.ready_timeout_s, cancelled=self._stopping.is_set):
                    return
            except TritonLaunchError as error:
                self.report(f"restarting tritonserver failed: {error}")
                continue
            self.restarts += 1
            running_since = time.monotonic()
            self.report(f"tritonserver is back (pid {self.server.process.pid}, restart {self.restarts})")
