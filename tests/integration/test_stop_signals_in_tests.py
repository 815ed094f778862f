"""A test run stopped by SIGTERM or SIGHUP (a CI timeout, a closed terminal) still stops the processes its
fixtures started: the stop-signals plugin turns both into KeyboardInterrupt, and pytest tears fixtures down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.process_stats import identity, still_running

REPO_ROOT = Path(__file__).resolve().parents[2]
A_RUN = '''
import subprocess, time
import pytest

@pytest.fixture
def server(tmp_path_factory):
    child = subprocess.Popen(["sleep", "300"])
    (PIDS / "child").write_text(str(child.pid))
    try:
        yield child
    finally:
        child.terminate()
        child.wait()

def test_long(server):
    time.sleep(120)
'''


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stopped_test_run_stops_what_its_fixtures_started(tmp_path, stop):
    (tmp_path / "test_run.py").write_text(f"from pathlib import Path\nPIDS = Path({str(tmp_path)!r})\n" + A_RUN)
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "tests.support.stop_signals_plugin",
                            "-p", "no:cacheprovider", str(tmp_path / "test_run.py")], cwd=REPO_ROOT,
                           env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "child").exists():
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()[0]
            time.sleep(0.1)
        child = identity(int((tmp_path / "child").read_text()))
        assert child is not None
        time.sleep(0.5)
        run.send_signal(stop)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    alive = still_running(child)
    if alive:
        os.kill(child.pid, signal.SIGKILL)  # exactly the process this test's run started
    assert not alive, "the fixture's process outlived the stopped test run"
