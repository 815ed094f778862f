"""Raw text in, CLIP text embedding out: the clip_text_embed ensemble equals open_clip tokenisation + the text tower."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from export.onnx_io import open_session, run_session

pytestmark = pytest.mark.integration

QUERIES = ["floral summer dress", "but in black", "검은색 원피스", "", "denim " * 60]


def embed_text(client, module, texts: list[str]) -> np.ndarray:
    tensor = module.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_))
    return client.infer("clip_text_embed", [tensor]).as_numpy("embeddings")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_text_ensemble_matches_open_clip_tokenizer_and_text_tower(protocol, tiny_repository, grpc_client, http_client):
    import open_clip

    client, module = (grpc_client, grpcclient) if protocol == "grpc" else (http_client, httpclient)
    served = embed_text(client, module, QUERIES)
    token_ids = open_clip.get_tokenizer("ViT-B-16")(QUERIES).numpy().astype(np.int64)
    session, _ = open_session(tiny_repository / "clip_text" / "1" / "model.onnx")
    expected = run_session(session, {"input_ids": token_ids})["embeddings"]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_tokenizer_model_returns_open_clip_token_ids(grpc_client):
    import open_clip

    tensor = grpcclient.InferInput("text", [len(QUERIES), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[q.encode("utf-8")] for q in QUERIES], dtype=np.object_))
    served = grpc_client.infer("clip_tokenizer", [tensor]).as_numpy("input_ids")
    np.testing.assert_array_equal(served, open_clip.get_tokenizer("ViT-B-16")(QUERIES).numpy())


def test_text_that_is_not_utf8_is_rejected_and_the_server_keeps_serving(grpc_client):
    from tritonclient.utils import InferenceServerException

    tensor = grpcclient.InferInput("text", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"\xff\xfe\xfa"]], dtype=np.object_))
    with pytest.raises(InferenceServerException):
        grpc_client.infer("clip_text_embed", [tensor])
    assert embed_text(grpc_client, grpcclient, ["still fine"]).shape[0] == 1
