"""Mask codecs: COCO RLE and PNG round-trip exactly; malformed masks are InvalidInput."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import InvalidInput
from orchestrator.masks import decode_png, decode_rle, encode_png, encode_rle, rle_counts


@pytest.fixture
def mask():
    m = np.zeros((7, 5), dtype=bool)
    m[2:5, 1:4] = True
    m[0, 0] = True
    return m


def test_rle_round_trips_and_follows_coco_column_major_order(mask):
    rle = encode_rle(mask)
    assert rle["size"] == [7, 5]
    assert sum(rle["counts"]) == 35
    assert rle["counts"][0] == 0  # the first pixel is on, so the zero-run comes first with length 0
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_of_an_empty_mask_is_one_run():
    assert encode_rle(np.zeros((3, 4), bool))["counts"] == [12]


def test_png_round_trips(mask):
    np.testing.assert_array_equal(decode_png(encode_png(mask)), mask)


@pytest.mark.parametrize("rle", [{"size": [2, 2], "counts": [1, 2]}, {"size": [2, 2], "counts": [5, -1]},
                                 {"counts": [4]}, {"size": "big", "counts": [4]}])
def test_malformed_rle_is_invalid_input(rle):
    with pytest.raises(InvalidInput):
        decode_rle(rle)


def test_mask_of_another_size_than_the_image_is_invalid_input(mask):
    with pytest.raises(InvalidInput, match="does not match"):
        decode_rle(encode_rle(mask), expected_hw=(8, 5))
    with pytest.raises(InvalidInput):
        decode_png("not base64 at all!")


def test_rle_counts_are_the_runs_encode_rle_lists():
    rng = np.random.default_rng(3)
    for mask in (rng.random((7, 9)) > 0.5, np.ones((4, 3), bool), np.zeros((2, 5), bool)):
        counts = rle_counts(mask)
        assert counts.dtype == np.int64
        assert counts.tolist() == encode_rle(mask)["counts"]
