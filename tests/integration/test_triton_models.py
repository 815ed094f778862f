"""Every ONNX model served by a real tritonserver answers over gRPC and HTTP exactly as in-process onnxruntime does."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from export.onnx_io import open_session, run_session
from tests.integration import samples

pytestmark = pytest.mark.integration

_TRITON_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64"}


def infer(client, module, model: str, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    """Calls `model` through a tritonclient module (grpc or http) and returns the named outputs."""
    inputs = []
    for name, value in feeds.items():
        tensor = module.InferInput(name, list(value.shape), _TRITON_DTYPES[value.dtype])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer(model, inputs, outputs=[module.InferRequestedOutput(name) for name in outputs])
    return {name: result.as_numpy(name) for name in outputs}


def local(repository, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session, _ = open_session(repository / model / "1" / "model.onnx")
    return run_session(session, feeds)


def encoder_output(tiny_repository) -> np.ndarray:
    return local(tiny_repository, "sam_encoder", samples.sam_encoder_feeds())["image_embeddings"]


def model_cases(tiny_repository) -> dict[str, tuple[dict[str, np.ndarray], list[str]]]:
    return {
        "sam_encoder": (samples.sam_encoder_feeds(), ["image_embeddings"]),
        "sam_decoder": (samples.sam_decoder_feeds(encoder_output(tiny_repository)),
                        ["masks", "iou_predictions", "low_res_masks"]),
        "clip_image": (samples.clip_image_feeds(), ["embeddings"]),
        "clip_text": ({"input_ids": _token_ids(["a red floral dress", "검은색 원피스"])}, ["embeddings"]),
        "tryon_classifier": (samples.tryon_classifier_feeds(), ["probabilities"]),
    }


def _token_ids(texts: list[str]) -> np.ndarray:
    import open_clip

    return open_clip.get_tokenizer("ViT-B-16")(texts).numpy().astype(np.int64)


@pytest.mark.parametrize("model", ["sam_encoder", "sam_decoder", "clip_image", "clip_text", "tryon_classifier"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_model_matches_in_process_onnxruntime(model, protocol, tiny_repository, grpc_client, http_client):
    feeds, outputs = model_cases(tiny_repository)[model]
    client, module = (grpc_client, grpcclient) if protocol == "grpc" else (http_client, httpclient)
    served = infer(client, module, model, feeds, outputs)
    expected = local(tiny_repository, model, feeds)
    for name in outputs:
        assert served[name].shape == expected[name].shape, name
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=f"{model}.{name}")


def test_sam_decoder_returns_four_masks_at_original_size_with_scores(tiny_repository, grpc_client):
    feeds, outputs = model_cases(tiny_repository)["sam_decoder"]
    served = infer(grpc_client, grpcclient, "sam_decoder", feeds, outputs)
    assert served["masks"].shape == (1, 4, 480, 640)
    assert served["iou_predictions"].shape == (1, 4)
    assert served["low_res_masks"].shape == (1, 4, 256, 256)


def test_embeddings_are_l2_normalised(tiny_repository, grpc_client):
    feeds, _ = model_cases(tiny_repository)["clip_image"]
    embeddings = infer(grpc_client, grpcclient, "clip_image", feeds, ["embeddings"])["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


def test_classifier_probabilities_sum_to_one(grpc_client):
    feeds = samples.tryon_classifier_feeds(batch=3)
    probabilities = infer(grpc_client, grpcclient, "tryon_classifier", feeds, ["probabilities"])["probabilities"]
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_request_gets_exactly_the_outputs_it_names_and_all_when_it_names_none(tiny_repository, protocol,
                                                                               grpc_client, http_client):
    client, module = (grpc_client, grpcclient) if protocol == "grpc" else (http_client, httpclient)
    feeds, _ = model_cases(tiny_repository)["sam_decoder"]
    inputs = []
    for name, value in feeds.items():
        tensor = module.InferInput(name, list(value.shape), _TRITON_DTYPES[value.dtype])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    expected = local(tiny_repository, "sam_decoder", feeds)
    only_scores = client.infer("sam_decoder", inputs, outputs=[module.InferRequestedOutput("iou_predictions")])
    assert only_scores.as_numpy("masks") is None and only_scores.as_numpy("low_res_masks") is None
    np.testing.assert_allclose(only_scores.as_numpy("iou_predictions"), expected["iou_predictions"], atol=1e-5)
    everything = client.infer("sam_decoder", inputs)
    for name in ("masks", "iou_predictions", "low_res_masks"):
        assert everything.as_numpy(name).shape == expected[name].shape, name


def test_the_click_output_set_served_from_the_pruned_graph_matches_the_full_graph(tiny_repository, grpc_client):
    """sam_decoder's CPU config names low_res_masks + iou_predictions as an output set: those requests run a copy
    of the graph without the photo-size upsampling, and must answer exactly what the whole graph computes."""
    from orchestrator.clients.models import CLICK_OUTPUTS

    feeds, _ = model_cases(tiny_repository)["sam_decoder"]
    expected = local(tiny_repository, "sam_decoder", feeds)
    served = infer(grpc_client, grpcclient, "sam_decoder", feeds, CLICK_OUTPUTS)
    for name in CLICK_OUTPUTS:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("outputs", [None, "click"])
def test_a_click_without_mask_inputs_runs_the_folded_graph_and_answers_as_with_zeros(tiny_repository, grpc_client,
                                                                                      outputs):
    """The CPU config makes mask_input and has_mask_input optional (zero_when_absent): a request without them runs
    a graph in which they are constant zeros, and must answer what the whole graph computes for zeros."""
    from orchestrator.clients.models import CLICK_OUTPUTS, NO_MASK_INPUTS

    feeds, all_outputs = model_cases(tiny_repository)["sam_decoder"]
    names = CLICK_OUTPUTS if outputs == "click" else all_outputs
    assert not feeds["has_mask_input"].any() and not feeds["mask_input"].any()
    expected = local(tiny_repository, "sam_decoder", feeds)
    without = {name: value for name, value in feeds.items() if name not in NO_MASK_INPUTS}
    served = infer(grpc_client, grpcclient, "sam_decoder", without, names)
    for name in names:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)


def test_a_click_with_only_one_of_the_mask_inputs_is_refused(tiny_repository, grpc_client):
    feeds, _ = model_cases(tiny_repository)["sam_decoder"]
    del feeds["has_mask_input"]
    with pytest.raises(Exception, match="send all or none"):
        infer(grpc_client, grpcclient, "sam_decoder", feeds, ["iou_predictions"])


def test_the_onnx_models_run_inside_the_server_process(triton_server):
    """The session's Triton serves the CPU configs' onnxruntime_cpu backend from the in-process library (the
    launcher built it), not from model.py in Python-backend stub processes."""
    log = triton_server.log_path.read_text(errors="replace")
    assert "onnxruntime_cpu: in-process backend" in log
    rows = [line for line in log.splitlines() if line.startswith("| onnxruntime_cpu ")]
    assert rows and all("libtriton_onnxruntime_cpu.so" in row for row in rows)


def test_the_python_backend_runner_answers_as_the_in_process_one(tiny_repository, grpc_client, tmp_path):
    """--cpu-runner python-backend (and the fallback where the library cannot be built) serves the same runner in
    the Python backend's stub process: one decoder click and one classifier batch answer as in process."""
    from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer
    from tests.conftest import free_port

    cases = model_cases(tiny_repository)
    click = {name: value for name, value in cases["sam_decoder"][0].items() if name not in ("mask_input",
                                                                                          "has_mask_input")}
    calls = [("sam_decoder", click, ["low_res_masks", "iou_predictions"]),
             ("tryon_classifier", *cases["tryon_classifier"])]
    launch = TritonLaunch(repository=tiny_repository, backend_dir=tmp_path / "backends", cpu_runner="python-backend",
                          ports=TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port()),
                          extra_args=("--model-control-mode=explicit", "--load-model=sam_decoder",
                                      "--load-model=tryon_classifier"))
    server = TritonServer(launch, log_path=tmp_path / "tritonserver.log")
    server.start()
    try:
        assert server.wait_until_ready(timeout_s=300)
        stub_client = grpcclient.InferenceServerClient(server.grpc_url)
        for model, feeds, outputs in calls:
            served = infer(stub_client, grpcclient, model, feeds, outputs)
            expected = infer(grpc_client, grpcclient, model, feeds, outputs)
            for name in outputs:
                np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-6)
        stub_client.close()
    finally:
        server.stop()
    assert "libtriton_onnxruntime_cpu.so" not in (tmp_path / "tritonserver.log").read_text(errors="replace")


def test_requests_batched_together_each_get_their_own_answer(tiny_repository, triton_server):
    """Concurrent classifier requests of different batch sizes, which Triton's dynamic batcher may hand over
    together (the in-process backend then passes them to the runner in one call), each get the probabilities of
    their own images."""
    from concurrent.futures import ThreadPoolExecutor

    feeds = [samples.tryon_classifier_feeds(batch=1 + i % 3, seed=10 * i) for i in range(8)]
    expected = [local(tiny_repository, "tryon_classifier", feed)["probabilities"] for feed in feeds]

    def call(feed):
        client = grpcclient.InferenceServerClient(triton_server.grpc_url)
        try:
            return infer(client, grpcclient, "tryon_classifier", feed, ["probabilities"])["probabilities"]
        finally:
            client.close()

    for _ in range(3):  # a few rounds, so that some rounds batch requests together
        with ThreadPoolExecutor(len(feeds)) as pool:
            answers = list(pool.map(call, feeds))
        for answer, want in zip(answers, expected):
            np.testing.assert_allclose(answer, want, rtol=1e-4, atol=1e-5)


def test_a_server_whose_embedded_python_cannot_start_exits_and_says_why(tiny_repository, tmp_path, monkeypatch):
    """The build fallback does not cover a library that loads but cannot start its Python (a tritonserver started
    by hand without SNAPFIT_PYTHON): the models fail to load, the server exits, and its log says why."""
    from snapfit.triton import launcher
    from tests.conftest import free_port

    environment = launcher.server_environment
    monkeypatch.setattr(launcher, "server_environment",
                        lambda: {k: v for k, v in environment().items() if k != "SNAPFIT_PYTHON"})
    log_path = tmp_path / "tritonserver.log"
    server = launcher.TritonServer(launcher.TritonLaunch(
        repository=tiny_repository, ports=launcher.TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port()),
        extra_args=("--model-control-mode=explicit", "--load-model=clip_text")), log_path=log_path)
    server.start()
    try:
        with pytest.raises(launcher.TritonLaunchError, match="exited"):
            server.wait_until_ready(timeout_s=120)
    finally:
        server.stop()
    assert "SNAPFIT_PYTHON is not set" in log_path.read_text(errors="replace")
