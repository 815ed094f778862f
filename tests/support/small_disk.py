"""A small real filesystem for fault tests: a tmpfs of a few MB mounted on a test folder, which the test can fill to
the last byte (writes then fail with ENOSPC, as on a full disk) and free again, and expose read-only through a
second, read-only bind mount (writes fail with EROFS).

Mounting needs CAP_SYS_ADMIN (root in the CI container); without it the tests that use it skip, saying why.
Every mount made here is undone when the context ends, lazily, so a process still holding files there cannot
leave it behind.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER_NAME = ".filler"
CHUNK = b"\0" * (1 << 16)


class SmallDisk:
    """A mounted tmpfs at `path`: `fill()` takes every free byte, `free()` gives them back."""

    def __init__(self, path: Path):
        self.path = path

    def fill(self) -> int:
        """Writes a filler file until the filesystem is full; returns the bytes it took.

        Large writes first, then smaller ones for what a partial one left. Unbuffered: a buffered file that took
        part of a write keeps the rest in its buffer, and closing it then fails with ENOSPC."""
        written = 0
        for size in (len(CHUNK), 4096, 512, 1):
            try:
                with open(self.path / FILLER_NAME, "ab", buffering=0) as filler:
                    while True:
                        written += filler.write(CHUNK[:size])
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
        return written

    def free(self) -> None:
        (self.path / FILLER_NAME).unlink(missing_ok=True)


def _mount(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["mount", *args], capture_output=True, text=True)
    except FileNotFoundError:
        return subprocess.CompletedProcess(["mount", *args], 127, "", "no mount command on this machine")


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[SmallDisk]:
    """A tmpfs of size_mb mounted on `path` (created if needed) for the duration of the context."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


@contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """`source` seen through a read-only bind mount at `view`: the same files, every write refused (EROFS)."""
    view.mkdir(parents=True, exist_ok=True)
    bound = _mount("--bind", str(source), str(view))
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs CAP_SYS_ADMIN): {bound.stderr.strip()}")
    try:
        made_read_only = _mount("-o", "remount,bind,ro", str(view))
        assert made_read_only.returncode == 0, made_read_only.stderr
        yield view
    finally:
        subprocess.run(["umount", "--lazy", str(view)], check=False)
