"""The client half of the SAM contract must reproduce segment_anything's own resizing and prompt transforms exactly."""

import numpy as np
import pytest
from segment_anything.utils.transforms import ResizeLongestSide

from snapfit.preprocessing.sam import longest_side_size, map_coords, prompt_arrays, resize_for_encoder

SAM_TRANSFORM = ResizeLongestSide(1024)
SIZES = [(768, 1024), (1024, 683), (1536, 1024), (1000, 1500), (480, 640), (333, 777), (1, 5000), (1024, 1024),
         (4032, 3024), (701, 1023)]


@pytest.mark.parametrize("h,w", SIZES)
def test_longest_side_size_equals_segment_anything_rounding(h, w):
    assert longest_side_size(h, w) == SAM_TRANSFORM.get_preprocess_shape(h, w, 1024)


def test_longest_side_size_rounds_half_up_as_int_of_x_plus_half():
    assert longest_side_size(1536, 1024) == (1024, 683)  # 682.67 -> 683
    assert longest_side_size(2048, 1365) == (1024, 683)  # 682.5 -> 683
    assert longest_side_size(768, 1024) == (768, 1024)


def test_longest_side_size_rejects_empty_images():
    with pytest.raises(ValueError, match="positive"):
        longest_side_size(0, 10)


@pytest.mark.parametrize("h,w", [(600, 450), (1536, 1024), (333, 777), (1024, 768)])
def test_resize_for_encoder_is_byte_identical_to_segment_anything_apply_image(h, w):
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = resize_for_encoder(image)
    assert ours.dtype == np.uint8 and max(ours.shape[:2]) == 1024
    np.testing.assert_array_equal(ours, SAM_TRANSFORM.apply_image(image))


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32)])
def test_resize_for_encoder_rejects_anything_but_hwc_uint8_rgb(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        resize_for_encoder(bad)


def test_map_coords_equals_segment_anything_apply_coords():
    coords = np.array([[0.0, 0.0], [639.0, 479.0], [123.4, 56.7]])
    np.testing.assert_array_equal(map_coords(coords, (480, 640)), SAM_TRANSFORM.apply_coords(coords, (480, 640)))


def test_prompt_arrays_for_points_append_the_pad_point_and_map_into_the_1024_frame():
    points, orig_hw = np.array([[100.0, 200.0], [300.5, 50.25]]), (1536, 1024)
    feeds = prompt_arrays(points, [1, 0], None, orig_hw)
    expected = SAM_TRANSFORM.apply_coords(points, orig_hw).astype(np.float32)
    assert feeds["point_coords"].shape == (1, 3, 2) and feeds["point_coords"].dtype == np.float32
    np.testing.assert_array_equal(feeds["point_coords"][0, :2], expected)
    np.testing.assert_array_equal(feeds["point_coords"][0, 2], [0.0, 0.0])
    np.testing.assert_array_equal(feeds["point_labels"], [[1.0, 0.0, -1.0]])
    np.testing.assert_array_equal(feeds["orig_im_size"], np.array([1536.0, 1024.0], np.float32))
    assert feeds["mask_input"].shape == (1, 1, 256, 256) and not feeds["mask_input"].any()
    np.testing.assert_array_equal(feeds["has_mask_input"], [0.0])


def test_prompt_arrays_encode_a_box_as_corner_points_labelled_2_and_3_without_padding():
    box, orig_hw = np.array([10.0, 20.0, 400.0, 300.0]), (480, 640)
    feeds = prompt_arrays([[50, 60]], [1], box, orig_hw)
    expected_box = SAM_TRANSFORM.apply_boxes(box[None], orig_hw).reshape(2, 2).astype(np.float32)
    np.testing.assert_array_equal(feeds["point_coords"][0, 1:], expected_box)
    np.testing.assert_array_equal(feeds["point_labels"], [[1.0, 2.0, 3.0]])


def test_prompt_arrays_accept_a_box_alone():
    feeds = prompt_arrays(None, None, [10, 20, 400, 300], (480, 640))
    np.testing.assert_array_equal(feeds["point_labels"], [[2.0, 3.0]])


def test_prompt_arrays_pass_a_previous_low_res_mask_with_has_mask_input_1():
    previous = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    feeds = prompt_arrays([[5, 5]], [1], None, (100, 100), mask_input=previous)
    np.testing.assert_array_equal(feeds["mask_input"][0, 0], previous)
    np.testing.assert_array_equal(feeds["has_mask_input"], [1.0])


@pytest.mark.parametrize("kwargs,message", [
    ({"points": None, "labels": None, "box": None}, "at least one point or a box"),
    ({"points": [[1, 2]], "labels": [1, 1], "box": None}, "1 points but 2 labels"),
    ({"points": [[1, 2]], "labels": [2], "box": None}, "must be 1 .foreground. or 0"),
    ({"points": None, "labels": None, "box": [1, 2, 3]}, "box must be 4 numbers"),
    ({"points": [[1, 2]], "labels": [1], "box": None, "mask_input": np.zeros((64, 64))}, "256x256"),
])
def test_prompt_arrays_reject_malformed_prompts_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prompt_arrays(orig_hw=(100, 100), **kwargs)
