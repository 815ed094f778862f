"""tryon.serving: malformed request tensors get clear errors; values are left to the pipeline's one validator;
framing maps keypoints, mask and result."""

from __future__ import annotations

import numpy as np
import pytest

from tryon.errors import TryOnInputError
from tryon.inputs import validate_inputs, validate_options
from tryon.serving import TryOnRequestError, TryOnServing, pad_to_aspect, parse_request


def arrays(**override) -> dict[str, np.ndarray]:
    base = {
        "person": np.zeros((512, 384, 3), np.uint8), "garment": np.zeros((300, 300, 3), np.uint8),
        "keypoints": np.zeros((18, 3), np.float32), "inpaint_mask": np.ones((512, 384), np.uint8),
        "category": np.array([b"upper_body"], np.object_), "garment_key": np.array([b"p1"], np.object_),
        "steps": np.array([20], np.int32), "guidance": np.array([7.5], np.float32),
        "seed": np.array([3], np.int64), "scheduler": np.array([b"dpmpp"], np.object_),
    }
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def test_a_good_request_parses():
    request = parse_request(arrays())
    assert (request.category, request.scheduler, request.steps, request.seed, request.garment_key) == \
        ("upper_body", "dpmpp", 20, 3, "p1")
    assert request.inpaint_mask.dtype == bool
    assert parse_request(arrays(garment_key=None)).garment_key == ""


@pytest.mark.parametrize("override, message", [
    ({"person": None}, "missing input 'person'"),
    ({"person": np.zeros((512, 384), np.uint8)}, "person must be uint8 [H, W, 3]"),
    ({"garment": np.zeros((8, 8, 3), np.uint8)}, "16.."),
    ({"keypoints": np.zeros((17, 3), np.float32)}, "keypoints must be float32 [18, 3]"),
    ({"inpaint_mask": np.zeros((10, 10), np.uint8)}, "inpaint_mask must be [H, W]"),
    ({"category": np.array([b"\xff"], np.object_)}, "not UTF-8"),
    ({"steps": np.array([1, 2], np.int32)}, "exactly one value"),
])
def test_bad_requests_name_the_problem(override, message):
    with pytest.raises(TryOnRequestError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_request(arrays(**override))


def test_pad_to_aspect_centres_on_white():
    square = np.zeros((100, 100, 3), np.uint8)
    framed = pad_to_aspect(square, 128, 96)
    assert framed.shape == (128, 96, 3)
    assert framed[0, 48].tolist() == [255, 255, 255] and framed[64, 48].tolist() == [0, 0, 0]


class RecordingPipeline:
    """Stands in for LadiVtonPipeline to check what TryOnServing hands it (frame-sized tensors); validates first,
    with the same functions, as LadiVtonPipeline does (tests/unit/test_tryon_pipeline.py)."""

    def __call__(self, inputs, options, on_step, cancelled):
        validate_inputs(inputs, inputs.person.shape[:2])
        validate_options(options)
        self.inputs, self.options = inputs, options
        on_step(1, 1)
        return np.full(inputs.person.shape, 7, np.uint8)


def test_serving_resizes_to_the_frame_and_back():
    pipeline = RecordingPipeline()
    serving = TryOnServing(pipeline, (128, 96))
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[1] = [192, 256, 1]  # centre of a 384x512 person
    request = parse_request(arrays(keypoints=keypoints))
    result = serving.run(request)
    assert result.shape == (512, 384, 3) and (result == 7).all()
    assert pipeline.inputs.person.shape == (128, 96, 3) and pipeline.inputs.garment.shape == (128, 96, 3)
    assert pipeline.inputs.pose_map.shape == (18, 128, 96)
    peak = np.unravel_index(pipeline.inputs.pose_map[1].argmax(), (128, 96))
    assert peak == (64, 48)
    assert pipeline.inputs.inpaint_mask.shape == (128, 96) and pipeline.inputs.inpaint_mask.all()
    assert pipeline.options.scheduler == "dpmpp"
    with pytest.raises(TryOnRequestError, match="aspect"):
        serving.run(parse_request(arrays(person=np.zeros((512, 512, 3), np.uint8),
                                         inpaint_mask=np.zeros((512, 512), np.uint8))))


@pytest.mark.parametrize("override, message", [
    ({"category": np.array([b"hat"], np.object_)}, "category must be one of upper_body, lower_body, dresses"),
    ({"scheduler": np.array([b"euler"], np.object_)}, "scheduler must be one of ddim, dpmpp"),
    ({"steps": np.array([0], np.int32)}, "steps must be an integer in 1..500"),
    ({"steps": np.array([501], np.int32)}, "steps must be an integer in 1..500"),
    ({"guidance": np.array([np.nan], np.float32)}, "guidance must be a number in 0..30"),
    ({"guidance": np.array([30.5], np.float32)}, "guidance must be a number in 0..30"),
])
def test_out_of_range_values_are_refused_once_by_the_pipeline_validator(override, message):
    serving = TryOnServing(RecordingPipeline(), (128, 96))
    request = parse_request(arrays(**override))  # well-formed tensors: parsing accepts them
    with pytest.raises(TryOnInputError, match=message.replace(".", r"\.")):
        serving.run(request)


def test_malformed_and_out_of_range_requests_share_one_error_type_for_the_backend():
    assert issubclass(TryOnRequestError, TryOnInputError)
