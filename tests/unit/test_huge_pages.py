"""Moving a buffer onto transparent huge pages (orchestrator/index/huge_pages.py): the arithmetic everywhere, the
kernel call where the kernel has MADV_COLLAPSE (Linux 6.1+), skipped elsewhere."""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from orchestrator.index import huge_pages
from tests.support.pages import anon_huge_kib

MIB = 1024 * 1024


@pytest.mark.parametrize("address, nbytes, expected", [
    (0, 4 * MIB, (0, 4 * MIB)),
    (1, 4 * MIB, (2 * MIB, 2 * MIB)),  # the partial pages at both ends are left alone
    (2 * MIB - 1, 2 * MIB + 2, (2 * MIB, 2 * MIB)),
    (3 * MIB, 2 * MIB, (4 * MIB, 0)),  # no whole page inside
    (0, 0, (0, 0)),
])
def test_only_the_whole_huge_pages_inside_a_buffer_are_touched(address, nbytes, expected):
    assert huge_pages.aligned_span(address, nbytes, 2 * MIB) == expected


def test_a_buffer_without_a_whole_huge_page_inside_is_not_collapsed():
    assert huge_pages.collapse(huge_pages.huge_page_bytes() + 1, huge_pages.huge_page_bytes()) is False


def test_a_collapsed_buffer_keeps_its_contents_and_sits_on_huge_pages():
    page = huge_pages.huge_page_bytes()
    region = mmap.mmap(-1, 4 * page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # like malloc's large blocks
    data = np.frombuffer(region, dtype=np.float32)
    data[:] = np.arange(data.size, dtype=np.float32)
    address = data.ctypes.data
    if not huge_pages.collapse(address, data.nbytes):
        pytest.skip("this kernel cannot collapse memory onto huge pages (MADV_COLLAPSE needs Linux 6.1+)")
    assert anon_huge_kib(address, data.nbytes) >= 3 * page // 1024  # at least the 3 whole pages inside the mapping
    np.testing.assert_array_equal(data, np.arange(data.size, dtype=np.float32))
    del data
    region.close()
