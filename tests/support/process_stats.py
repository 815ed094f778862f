"""Processes as /proc (Linux) shows them: resident memory, open file descriptors, and identities that survive PID
reuse."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def rss_kib(pid: int) -> int:
    """The process's resident set size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a test saw it: its PID and start time. PIDs are reused (pid_max is 32768 in CI containers, and
    thread ids draw on the same numbers), so "the PID exists" alone may name another process."""

    pid: int
    started: int  # clock ticks after boot: the 22nd field of /proc/PID/stat


def identity(pid: int) -> ProcessIdentity | None:
    """The process with this PID now; None when there is none (or only a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return ProcessIdentity(pid, int(fields[19]))


def identities(pids: Iterable[int]) -> list[ProcessIdentity]:
    """The processes with these PIDs now (those that are gone are left out)."""
    return [found for found in map(identity, pids) if found is not None]


def still_running(process: ProcessIdentity) -> bool:
    """Whether that very process is alive (not reaped, not a zombie, its PID not reused)."""
    return identity(process.pid) == process


def command_line(pid: int) -> str:
    """The process's command line, arguments joined by NUL; "" once it has exited (a short-lived child may go
    between listing /proc and reading this)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """PIDs of the direct children of `pid`, across its threads (threads that end meanwhile are skipped)."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> set[int]:
    """PIDs of every live process below `pid`, from /proc (ppid is the 4th field of /proc/PID/stat)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields is not None and fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: fields[0] is the state, fields[19] the start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
