"""A pytest plugin: SIGTERM and SIGHUP end the test run like Ctrl-C, so fixtures still tear down.

Python's default SIGTERM/SIGHUP end pytest at once, and every server a fixture started (tritonserver, `snapfit
serve`) would outlive it: a CI job's timeout sends SIGTERM. As KeyboardInterrupt, pytest stops the run and
runs the fixtures' finalizers, which stop exactly the processes they started.
"""

from __future__ import annotations

import signal

from snapfit.cli.signals import raise_keyboard_interrupt


def pytest_configure(config) -> None:
    if not hasattr(config, "workerinput"):  # the main pytest process (not a pytest-xdist worker)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, raise_keyboard_interrupt)
