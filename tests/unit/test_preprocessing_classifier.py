"""Client-side preprocessing for `tryon_classifier`: letterboxing onto white, decoding, exact geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from snapfit.preprocessing.classifier import (
    CLASSIFIER_SIZE,
    letterbox_geometry,
    load_for_classifier,
    resize_for_classifier,
    to_rgb_array,
)


def test_tall_photo_is_scaled_to_full_height_and_padded_white_left_and_right():
    image = np.zeros((500, 350, 3), dtype=np.uint8)  # a black "garment" filling the photo
    out = resize_for_classifier(image)
    # 350 * 384 / 500 = 268.8 -> 269 columns; 115 columns of padding, the odd one on the right
    assert letterbox_geometry(500, 350) == (0, 57, 384, 269)
    assert out.shape == (384, 384, 3) and out.dtype == np.uint8
    assert (out[:, :57] == 255).all() and (out[:, 57 + 269:] == 255).all()
    assert (out[:, 57:57 + 269] == 0).all()


def test_wide_photo_is_padded_white_above_and_below():
    out = resize_for_classifier(np.zeros((200, 600, 3), dtype=np.uint8))
    assert letterbox_geometry(200, 600) == (128, 0, 128, 384)
    assert (out[:128] == 255).all() and (out[256:] == 255).all() and (out[128:256] == 0).all()


def test_a_384_square_passes_through_unchanged():
    image = np.random.default_rng(0).integers(0, 256, size=(384, 384, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_for_classifier(image), image)


def test_a_one_pixel_high_strip_keeps_at_least_one_row():
    assert letterbox_geometry(1, 2000) == (191, 0, 1, 384)
    assert resize_for_classifier(np.zeros((1, 2000, 3), dtype=np.uint8)).shape == (384, 384, 3)


def test_small_photos_are_upscaled_so_the_garment_fills_the_square():
    top, left, height, width = letterbox_geometry(100, 50)
    assert (height, width) == (384, 192) and (top, left) == (0, 96)


@pytest.mark.parametrize("bad", [
    np.zeros((10, 10, 3), dtype=np.float32),
    np.zeros((10, 10, 4), dtype=np.uint8),
    np.zeros((10, 10), dtype=np.uint8),
])
def test_arrays_that_are_not_hwc_uint8_rgb_are_rejected(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        resize_for_classifier(bad)


def test_transparent_background_becomes_white_not_black():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    rgba[1:3, 1:3] = (200, 0, 0, 255)  # opaque red product in the middle
    out = to_rgb_array(Image.fromarray(rgba, mode="RGBA"))
    assert out.shape == (4, 4, 3)
    assert (out[0, 0] == 255).all() and tuple(out[1, 1]) == (200, 0, 0)


def test_greyscale_photos_become_three_channel_rgb():
    out = to_rgb_array(Image.fromarray(np.full((5, 7), 80, dtype=np.uint8), mode="L"))
    assert out.shape == (5, 7, 3) and (out == 80).all()


def test_exif_orientation_is_applied_before_resizing(tmp_path):
    image = Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8))  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the photo is really portrait
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    with Image.open(path) as opened:
        assert to_rgb_array(opened).shape == (40, 20, 3)


def test_load_for_classifier_decodes_and_letterboxes_a_file(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((300, 150, 3), dtype=np.uint8)).save(path)
    out = load_for_classifier(path)
    assert out.shape == (CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3)
    assert (out[:, :96] == 255).all() and (out[:, 96:288] == 0).all()


def test_load_for_classifier_raises_oserror_for_a_broken_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(OSError):
        load_for_classifier(path)
