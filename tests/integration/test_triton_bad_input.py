"""Malformed requests get an error from Triton, and the server keeps serving the next good request."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration import samples

pytestmark = pytest.mark.integration


def tensor(module, name: str, value: np.ndarray, dtype: str):
    t = module.InferInput(name, list(value.shape), dtype)
    t.set_data_from_numpy(value)
    return t


def assert_still_serving(client, module) -> None:
    feeds = samples.tryon_classifier_feeds(batch=1)
    result = client.infer("tryon_classifier", [tensor(module, "image", feeds["image"], "UINT8")])
    assert result.as_numpy("probabilities").shape == (1, 2)


@pytest.fixture(params=["grpc", "http"])
def client_and_module(request, grpc_client, http_client):
    return (grpc_client, grpcclient) if request.param == "grpc" else (http_client, httpclient)


def test_wrong_shape_is_rejected(client_and_module):
    client, module = client_and_module
    wrong = np.zeros((1, 100, 100, 3), dtype=np.uint8)  # the classifier takes 384x384 images
    with pytest.raises(InferenceServerException, match="(?i)shape|dims"):
        client.infer("tryon_classifier", [tensor(module, "image", wrong, "UINT8")])
    assert_still_serving(client, module)


def test_wrong_dtype_is_rejected(client_and_module):
    client, module = client_and_module
    wrong = np.zeros((1, 384, 384, 3), dtype=np.float32)
    with pytest.raises(InferenceServerException, match="(?i)data.?type|datatype|dtype"):
        client.infer("tryon_classifier", [tensor(module, "image", wrong, "FP32")])
    assert_still_serving(client, module)


def test_missing_input_is_rejected(client_and_module, tiny_repository):
    client, module = client_and_module
    feeds = samples.sam_decoder_feeds(np.zeros((1, 256, 64, 64), np.float32))
    del feeds["orig_im_size"]
    with pytest.raises(InferenceServerException, match="(?i)orig_im_size|expected .* inputs|input"):
        client.infer("sam_decoder", [tensor(module, k, v, "FP32") for k, v in feeds.items()])
    assert_still_serving(client, module)


def test_unknown_model_is_rejected(client_and_module):
    client, module = client_and_module
    with pytest.raises(InferenceServerException, match="(?i)unknown|not found|unavailable"):
        client.infer("no_such_model", [tensor(module, "image", np.zeros((1, 3), np.uint8), "UINT8")])
    assert_still_serving(client, module)


def test_image_larger_than_the_encoder_frame_fails_alone(client_and_module):
    """dims [-1,-1,3] let a 1100-pixel side through Triton's checks; the runner must answer with an error."""
    client, module = client_and_module
    too_big = np.zeros((1, 1100, 800, 3), dtype=np.uint8)
    with pytest.raises(InferenceServerException):
        client.infer("sam_encoder", [tensor(module, "image", too_big, "UINT8")])
    assert_still_serving(client, module)
