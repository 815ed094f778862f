"""What the kernel says about this process's memory (Linux /proc/self/smaps)."""

from __future__ import annotations

import re
from pathlib import Path


def anon_huge_kib(address: int, nbytes: int = 1) -> int:
    """AnonHugePages (KiB) of this process's mappings that overlap [address, address + nbytes); 0 outside Linux.
    (A buffer can span mappings: a heap that grew by brk is often several.)"""
    smaps = Path("/proc/self/smaps")
    if not smaps.exists():
        return 0
    overlaps, kib = False, 0
    for line in smaps.read_text().splitlines():
        span = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if span:
            overlaps = int(span[1], 16) < address + nbytes and address < int(span[2], 16)
        elif overlaps and line.startswith("AnonHugePages:"):
            kib += int(line.split()[1])
    return kib
