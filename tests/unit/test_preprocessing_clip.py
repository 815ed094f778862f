"""Client-side CLIP preprocessing reproduces open_clip's validation transform exactly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from snapfit.contract import CLIP_IMAGE_SIZE as IMAGE_SIZE
from snapfit.preprocessing.clip import batch, resize_and_crop

SIZES = [(300, 260), (224, 224), (180, 400), (1000, 333), (225, 224), (223, 500), (50, 60), (224, 227), (101, 999)]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def open_clip_resize_and_crop(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """open_clip's own transform up to (not including) the tensor conversion."""
    transform = image_transform_v2(PreprocessCfg(size=size), is_train=False)
    resize, crop = transform.transforms[0], transform.transforms[1]
    return np.asarray(crop(resize(Image.fromarray(image))))


@pytest.mark.parametrize("height,width", SIZES)
def test_resize_and_crop_is_byte_identical_to_open_clip(height, width):
    image = random_image(height, width, seed=height * width)
    np.testing.assert_array_equal(resize_and_crop(image), open_clip_resize_and_crop(image))


def test_resize_and_crop_then_in_graph_normalisation_equals_open_clip_preprocess():
    from export.clip import ClipImageEncoder
    from export.clip_models import load_network

    network = load_network("tiny", None, seed=0)
    encoder = ClipImageEncoder(network)
    preprocess = image_transform_v2(network.preprocess, is_train=False)
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(SIZES[:4])]
    expected = torch.stack([preprocess(Image.fromarray(image)) for image in images])
    pixels = encoder.pixel_values(torch.from_numpy(batch(images)))
    torch.testing.assert_close(pixels, expected, rtol=0, atol=1e-6)


def test_centre_crop_offset_rounds_half_to_even_like_torchvision():
    image = random_image(224, 229)
    # no resize (the short side is already 224); left offset = round((w - 224) / 2)
    for width, left in ((225, 0), (226, 1), (227, 2), (229, 2)):
        np.testing.assert_array_equal(resize_and_crop(image[:, :width]), image[:, left:left + 224])


def test_output_is_size_by_size_rgb_uint8_for_any_aspect_ratio():
    for height, width in SIZES:
        crop = resize_and_crop(random_image(height, width), size=96)
        assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8


def test_batch_stacks_images_into_the_clip_image_input():
    images = [random_image(h, w) for h, w in SIZES[:3]]
    assert batch(images).shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32)])
def test_non_rgb_uint8_images_are_rejected(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        resize_and_crop(bad)


def test_preprocessing_module_imports_without_torch():
    code = "import sys, snapfit.preprocessing.clip; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
