"""benchmarks.perf_analyzer without a server: CSV parsing, input data per served model, URL and binary checks."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import numpy as np
import pytest

from benchmarks import perf_analyzer as pa
from benchmarks.report import write_report

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
SERVED_MODELS = sorted(p.name for p in REPOSITORY.iterdir() if (p / "config.pbtxt").exists())
NUMPY_DTYPES = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8}

# recorded from perf_analyzer 2.41 (-f, --percentile=95) against clip_image on the tiny repository
SAMPLE_CSV = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
1,13.4578,43,948,62872,67,7552,528,3,6878,506672,510075,520148
2,52.7208,45,1057,22746,95,12824,500,2,17702,25786,43763,519485
"""
# with --verbose-csv two more columns follow; they are ignored
SAMPLE_VERBOSE_CSV = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,\
request/response,response wait
1,106.057,6,470,14196,23,1962,286,2,3171,6628,11264,504254,8,16920
"""


def _decoded(tensor: dict, dtype: str) -> np.ndarray:
    shape = tensor["shape"]
    if dtype == "STRING":
        return np.array(tensor["content"], dtype=object).reshape(shape)
    if "b64" in tensor:
        return np.frombuffer(base64.b64decode(tensor["b64"]), dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    return np.array(tensor["content"], dtype=NUMPY_DTYPES[dtype]).reshape(shape)


def test_csv_rows_carry_percentiles_and_server_breakdown_in_ms():
    rows = pa.parse_csv(SAMPLE_CSV)
    assert [r["concurrency"] for r in rows] == [1, 2]
    first = rows[0]
    assert first["infer_per_s"] == pytest.approx(13.4578)
    assert (first["p50_ms"], first["p90_ms"], first["p95_ms"], first["p99_ms"]) == pytest.approx(
        (6.878, 506.672, 510.075, 520.148))
    assert first["server_queue_ms"] == pytest.approx(62.872)
    assert first["server_compute_infer_ms"] == pytest.approx(7.552)
    assert first["network_ms"] == pytest.approx(0.948)
    assert first["avg_ms"] == pytest.approx((43 + 948 + 62872 + 67 + 7552 + 528 + 3) / 1000)
    assert set(first) == {"concurrency", *pa.RESULT_KEYS}


def test_verbose_csv_columns_are_ignored_and_missing_ones_are_none():
    (row,) = pa.parse_csv(SAMPLE_VERBOSE_CSV)
    assert row["p99_ms"] == pytest.approx(504.254) and set(row) == {"concurrency", *pa.RESULT_KEYS}
    (short,) = pa.parse_csv("Concurrency,Inferences/Second,p95 latency\n4,10.5,2500\n")
    assert short["p95_ms"] == pytest.approx(2.5) and short["p50_ms"] is None and short["avg_ms"] is None
    assert pa.parse_csv("") == []


@pytest.mark.parametrize("config_name", ["cpu", None], ids=["cpu", "gpu"])
@pytest.mark.parametrize("model", SERVED_MODELS)
def test_input_data_matches_the_served_config_of_every_model(model, config_name):
    config = pa.repository_config(model, config_name)
    declared = pa.declared_inputs(config)
    document = json.loads(json.dumps(pa.input_data(model, config, requests=3)))
    assert len(document["data"]) == 3
    for request in document["data"]:
        assert set(request) == set(declared)
        for name, (dtype, dims) in declared.items():
            array = _decoded(request[name], dtype)
            assert len(array.shape) == len(dims), name
            assert all(d in (-1, s) and s > 0 for d, s in zip(dims, array.shape)), (name, array.shape, dims)


def _requests(model: str) -> list[dict[str, np.ndarray]]:
    return pa.model_inputs(model, pa.repository_config(model), requests=8)


def test_clip_text_ids_are_clip_token_sequences_inside_the_vocabulary():
    for arrays in _requests("clip_text"):
        ids = arrays["input_ids"]
        assert ids.dtype == np.int64 and ids.shape == (77,)
        assert ids.min() >= 0 and ids.max() < pa.CLIP_VOCAB_SIZE
        eot = int(np.flatnonzero(ids == pa.CLIP_EOT)[0])
        assert ids[0] == pa.CLIP_SOT and 1 < eot < 77 and not ids[eot + 1:].any()


def test_sam_decoder_prompt_is_one_click_inside_the_image_plus_the_pad_point():
    for arrays in _requests("sam_decoder"):
        height, width = arrays["orig_im_size"]
        assert (height, width) == pa.SAM_IMAGE_HW
        coords, labels = arrays["point_coords"][0], arrays["point_labels"][0]
        assert labels.tolist() == [1.0, -1.0]
        # the click lies inside the resized frame (longest side 1024), the pad point at the origin
        assert 0 < coords[0, 0] < width * 1024 / max(height, width) and 0 < coords[0, 1] < 1024
        assert coords[1].tolist() == [0.0, 0.0]
        assert "has_mask_input" not in arrays and "mask_input" not in arrays  # optional in the CPU config
        assert np.isfinite(arrays["image_embeddings"]).all() and arrays["image_embeddings"].std() > 0


def test_sam_encoder_image_has_its_longest_side_at_1024():
    (arrays, *_) = _requests("sam_encoder")
    assert arrays["image"].dtype == np.uint8 and max(arrays["image"].shape[:2]) == 1024


def test_text_models_get_real_queries_and_tryon_gets_valid_options():
    for model in ("clip_text_embed", "clip_tokenizer"):
        texts = [a["text"][0].decode() for a in _requests(model)]
        assert set(texts) <= set(pa.FASHION_QUERIES) and len(set(texts)) > 1
    tryon = _requests("ladi_vton")[0]
    height, width = tryon["person"].shape[:2]
    assert height * 3 == width * 4 and tryon["inpaint_mask"].shape == (height, width)
    assert set(np.unique(tryon["inpaint_mask"])) == {0, 1}
    assert tryon["category"][0] == b"upper_body" and tryon["scheduler"][0] in (b"ddim", b"dpmpp")
    assert 1 <= tryon["steps"][0] <= 500 and 0 <= tryon["guidance"][0] <= 30
    assert (tryon["keypoints"][:, 0] < width).all() and (tryon["keypoints"][:, 1] < height).all()


def test_input_data_for_a_model_without_a_maker_is_refused():
    with pytest.raises(KeyError, match="no input data"):
        pa.model_inputs("resnet50", {"input": []})


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "localhost:8001", "127.0.0.2:18001", "[::1]:8001"])
def test_loopback_addresses_are_accepted(url):
    assert pa.loopback_address(url) == url


@pytest.mark.parametrize("url", ["10.0.0.5:8001", "0.0.0.0:8001", "triton.example.com:8001", "192.168.1.2:8001",
                                 "127.0.0.1", "grpc://127.0.0.1:8001"])
def test_non_loopback_or_malformed_urls_are_refused(url):
    with pytest.raises(ValueError):
        pa.loopback_address(url)
    with pytest.raises(ValueError):
        pa.sweep(url, "clip_text", tools_dir=Path("/nonexistent"))


def test_missing_binary_names_make_env(tmp_path):
    with pytest.raises(pa.PerfAnalyzerMissing, match="make env"):
        pa.find_binary(tmp_path)
    with pytest.raises(pa.PerfAnalyzerMissing, match="make env"):
        pa.binary_environment(tmp_path)
    with pytest.raises(pa.PerfAnalyzerMissing, match="make env"):
        pa.sweep("127.0.0.1:1", "clip_text", tools_dir=tmp_path)


def _fake_tools(tmp_path: Path, script: str) -> Path:
    """A .tools layout whose perf_analyzer is a shell script, and an (empty) libcudart."""
    binary = tmp_path / "perf_analyzer-2.41.0" / "tritonclient-2.41.0.data" / "data" / "bin" / "perf_analyzer"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n" + script)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    lib = tmp_path / "cuda-runtime-12.3.101" / "nvidia" / "cuda_runtime" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudart.so.12").touch()
    return tmp_path


def _level(tools: Path, tmp_path: Path, timeout_s: float = 30.0, stability_pct: float = 10) -> dict:
    env = pa.binary_environment(tools, base={"PATH": "/usr/bin:/bin"})
    return pa.run_level(pa.find_binary(tools), env, "127.0.0.1:8001", "clip_text", 1, 2, tmp_path / "data.json",
                        tmp_path, measurement_ms=100, max_trials=3, stability_pct=stability_pct, timeout_s=timeout_s)


def test_a_level_reads_the_csv_that_perf_analyzer_writes(tmp_path):
    csv_line = SAMPLE_CSV.splitlines()[2]
    # "-f" is followed by the CSV path; the fake writes the header and the concurrency-2 line there
    tools = _fake_tools(tmp_path / "tools", f"""
while [ "$1" != "-f" ]; do shift; done
printf '%s\\n%s\\n' '{SAMPLE_CSV.splitlines()[0]}' '{csv_line}' > "$2"
""")
    row = _level(tools, tmp_path)
    assert row["error"] is None and row["concurrency"] == 2 and row["infer_per_s"] == pytest.approx(52.7208)
    assert row["stable"] is True
    # without a threshold the level is not judged: never reported as stable
    assert _level(tools, tmp_path, stability_pct=pa.ANY_STABILITY_PCT)["stable"] is None


def test_an_unstable_level_becomes_a_not_stable_error_row_instead_of_raising(tmp_path):
    tools = _fake_tools(tmp_path / "tools", """
echo "*** Measurement Settings ***"
echo "Request concurrency: 2"
echo "  Pass [1] throughput: 90.8006 infer/sec. p95 latency: 13989 usec"
echo "  Pass [2] throughput: 66.6194 infer/sec. p95 latency: 21477 usec"
echo "  Pass [3] throughput: 19.1541 infer/sec. p95 latency: 516915 usec"
echo "Failed to obtain stable measurement within 3 measurement windows for concurrency 2." >&2
exit 2
""")
    row = _level(tools, tmp_path)
    assert row["infer_per_s"] is None and row["p95_ms"] is None and row["stable"] is False
    assert row["error"] == ("not stable: 3 of at most 3 windows of 100 ms never had 3 in a row within 10 %; "
                            "the last 3 windows' throughput spread 374 %")
    # the windows it measured before giving up stay in the row
    assert row["window_infer_per_s"] == [90.8006, 66.6194, 19.1541]
    assert row["window_p95_ms"] == pytest.approx([13.989, 21.477, 516.915])
    assert row["spread_pct"] == pytest.approx((90.8006 / 19.1541 - 1) * 100)


def test_window_spread_needs_three_windows():
    assert pa.parse_windows("  Pass [1] throughput: 10.5 infer/sec. p95 latency: 2000 usec\n") == {
        "window_infer_per_s": [10.5], "window_p95_ms": [2.0], "spread_pct": None}


def test_a_level_that_hangs_is_killed_at_its_timeout(tmp_path):
    tools = _fake_tools(tmp_path / "tools", "exec sleep 30\n")
    row = _level(tools, tmp_path, timeout_s=0.5)
    assert row["error"] == "timed out after 0.5 s" and row["infer_per_s"] is None


def test_other_failures_keep_perf_analyzers_own_message_and_are_not_judged(tmp_path):
    tools = _fake_tools(tmp_path / "tools", """
echo "*** Measurement Settings ***"
echo "error: failed to get model metadata: Request for unknown model" >&2
exit 99
""")
    row = _level(tools, tmp_path)
    assert row["stable"] is None and "unknown model" in row["error"] and "Settings" not in row["error"]


def test_the_command_line_asks_for_10_percent_stability_even_when_quick():
    parser = pa._parser()
    for argv in ([], ["--quick"]):
        assert parser.parse_args(argv).stability_pct == pa.DEFAULT_STABILITY_PCT == 10
    assert parser.parse_args(["--stability-pct", "5"]).stability_pct == 5
    assert pa.DEFAULT_MAX_TRIALS >= 6 and pa.QUICK_MAX_TRIALS >= 6  # 3 to fill the comparison, then room to settle


def test_command_bounds_the_run_and_stabilises_on_p95(tmp_path):
    argv = pa.command(Path("pa"), "127.0.0.1:8001", "sam_decoder", 1, 4, tmp_path / "d.json", tmp_path / "o.csv",
                      measurement_ms=2000, max_trials=10, stability_pct=10)
    joined = " ".join(argv)
    for part in ("-i grpc", "-u 127.0.0.1:8001", "-m sam_decoder", "-b 1", "--concurrency-range 4",
                 "--measurement-interval 2000", "--max-trials 10", "--stability-percentage 10", "--percentile=95",
                 f"-f {tmp_path / 'o.csv'}", f"--input-data {tmp_path / 'd.json'}"):
        assert part in joined
    assert "--streaming" not in argv
    assert "--streaming" in pa.command(Path("pa"), "127.0.0.1:8001", "ladi_vton", 1, 1, tmp_path / "d.json",
                                       tmp_path / "o.csv", 2000, 3, 25, streaming=True)


def test_report_section_has_table_and_plots_and_keeps_error_rows(tmp_path):
    rows = []
    for model in ("clip_text", "sam_decoder"):
        for row in pa.parse_csv(SAMPLE_CSV):
            rows.append({"model": model, "batch": 1, "measurement_ms": 1000, "max_trials": 3, "stability_pct": 25,
                         **row, "error": None})
    rows.append({"model": "sam_encoder", "batch": 1, "concurrency": 1, **dict.fromkeys(pa.RESULT_KEYS),
                 "error": "No valid requests recorded within time interval."})
    report = write_report({"machine": {"cpu": "test"}, "sections": {pa.SECTION: rows}}, tmp_path)
    text = report.read_text()
    assert "Triton gRPC concurrency sweep (perf_analyzer)" in text and "No valid requests recorded" in text
    assert (tmp_path / "perf_analyzer_throughput.png").stat().st_size > 0
    assert (tmp_path / "perf_analyzer_p95.png").stat().st_size > 0
    assert "![throughput](perf_analyzer_throughput.png)" in text


def test_sam_decoder_requests_leave_out_the_mask_inputs_only_where_the_config_makes_them_optional():
    no_mask = {"mask_input", "has_mask_input"}
    cpu = pa.model_inputs("sam_decoder", pa.repository_config("sam_decoder"), requests=2)
    gpu = pa.model_inputs("sam_decoder", pa.repository_config("sam_decoder", config_name=None), requests=2)
    assert all(not no_mask & set(request) for request in cpu)
    assert all(no_mask <= set(request) for request in gpu)
    assert all(request["has_mask_input"].tolist() == [0.0] and not request["mask_input"].any() for request in gpu)
