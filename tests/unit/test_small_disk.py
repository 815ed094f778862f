"""tests.support.small_disk: the fault tests' full disk is full however much space was left, and fills quietly."""

from __future__ import annotations

import os

import pytest

from tests.support.small_disk import small_disk

PAGE = 4096


@pytest.mark.parametrize("pages_left_over", range(16))  # free space mod the filler's 64 KiB writes, in pages
def test_fill_takes_every_byte_whatever_space_is_left(tmp_path, pages_left_over):
    """A write the disk takes only part of must not leave the rest buffered: closing the file would then fail
    with ENOSPC (it did in CI when 60 KiB past a whole number of writes were free)."""
    with small_disk(tmp_path / "disk", 1) as disk:
        free = os.statvfs(disk.path).f_bavail * PAGE
        (disk.path / "taken").write_bytes(b"x" * ((free - pages_left_over * PAGE) % (1 << 16)))
        free = os.statvfs(disk.path).f_bavail * PAGE
        assert free % (1 << 16) == pages_left_over * PAGE
        assert disk.fill() == free
        assert os.statvfs(disk.path).f_bavail == 0
        assert disk.fill() == 0  # already full: nothing more, and no error
        disk.free()
        assert os.statvfs(disk.path).f_bavail * PAGE == free
