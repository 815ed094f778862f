"""benchmarks.model_latency on the tiny profile: fields, variants, speedups and the report (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from benchmarks.model_latency import (
    UNET_STEP,
    add_speedups,
    model_batches,
    pruned_session,
    run,
    serving_overhead,
    variants_for,
)
from benchmarks.report import profile_sections, write_report
from snapfit.contract import input_names

MODELS = ["clip_text", "tryon_classifier", UNET_STEP]
BATCHES = [1, 2]
LOCAL_VARIANTS = ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8")
ROW_FIELDS = {"model", "profile", "device", "variant", "batch", "threads", "count", "mean_ms", "p50_ms", "p95_ms", "p99_ms",
              "min_ms", "max_ms", "items_per_s", "speedup_vs_torch_fp32", "error", "gflop_per_item",
              "achieved_gflops", "peak_gflops", "peak_fraction", "int8_settings", "outputs"}
PEAKS = {"fp32": 100.0, "bf16": 50.0, "int8": 400.0}


@pytest.fixture(scope="module")
def tiny_rows(tmp_path_factory) -> list[dict]:
    return run(MODELS, "tiny", BATCHES, iterations=2, max_seconds=5.0, show_progress=False,
               workdir=tmp_path_factory.mktemp("model_latency"), peaks=PEAKS)


def test_every_row_has_every_field_and_was_timed(tiny_rows):
    for row in tiny_rows:
        assert set(row) == ROW_FIELDS
        assert row["error"] is None, row
        assert 1 <= row["count"] <= 2
        assert row["p50_ms"] > 0 and row["items_per_s"] > 0
    json.dumps(tiny_rows)


def test_the_sam_decoder_returns_the_orchestrators_outputs_and_bf16_stops_at_its_max_batch(tmp_path):
    rows = run(["clip_text", "sam_decoder"], "tiny", [1, 2], iterations=1, max_seconds=1.0, show_progress=False,
               workdir=tmp_path, warmup=0, variant_max_batch={"torch_bf16": 1})
    assert all(r["error"] is None for r in rows), rows
    decoder = {r["variant"]: r["outputs"] for r in rows if r["model"] == "sam_decoder"}
    assert decoder["ort_fp32"] == decoder["ort_int8"] == "low_res_masks, iou_predictions"
    assert decoder["torch_fp32"] is None
    assert all(r["outputs"] is None for r in rows if r["model"] != "sam_decoder")
    text = {(r["variant"], r["batch"]) for r in rows if r["model"] == "clip_text"}
    assert ("torch_bf16", 1) in text and ("torch_bf16", 2) not in text and ("ort_fp32", 2) in text
    # in process as served: the graph pruned to those outputs, so the photo-size masks are not computed either
    (graph,) = (tmp_path / "sam_decoder" / "fp32").rglob("model.onnx")
    session = pruned_session(graph, input_names("sam_decoder"), ["low_res_masks", "iou_predictions"])
    assert [o.name for o in session.get_outputs()] == ["low_res_masks", "iou_predictions"]


def test_every_onnx_model_and_batch_is_timed_in_the_four_local_variants_and_the_unet_step_in_torch(tiny_rows):
    combos = {(r["model"], r["batch"]): set() for r in tiny_rows}
    for row in tiny_rows:
        combos[(row["model"], row["batch"])].add(row["variant"])
    onnx_models = [m for m in MODELS if m != UNET_STEP]
    # the UNet step is one classifier-free-guidance call: 2 latents, whatever the batch list says
    assert set(combos) == {(m, b) for m in onnx_models for b in BATCHES} | {(UNET_STEP, 2)}
    assert all(combos[(m, b)] == set(LOCAL_VARIANTS) for m in onnx_models for b in BATCHES)
    assert combos[(UNET_STEP, 2)] == {"torch_fp32", "torch_bf16"}
    assert len(tiny_rows) == len(onnx_models) * len(BATCHES) * len(LOCAL_VARIANTS) + 2


def test_int8_rows_name_the_recipe_their_model_was_quantised_with(tiny_rows, tmp_path):
    for row in tiny_rows:
        if row["variant"] != "ort_int8":
            assert row["int8_settings"] is None
        elif row["model"] == "tryon_classifier":
            assert row["int8_settings"] == "static QDQ, 7-bit int8 weights per channel, uint8 activations"
        else:
            assert row["int8_settings"] == "dynamic, 7-bit int8 weights per channel, uint8 activations"
    text = write_report({"machine": {"cpu_model": "test"}, "sections": {"model_latency": tiny_rows}}, tmp_path).read_text()
    assert "ort_int8: dynamic, 7-bit int8 weights per channel, uint8 activations." in text


def test_efficiency_is_counted_flops_times_batch_over_p50_and_the_precisions_peak(tiny_rows):
    for row in tiny_rows:
        assert row["gflop_per_item"] > 0, row
        achieved = row["gflop_per_item"] * row["batch"] / (row["p50_ms"] / 1000)
        assert row["achieved_gflops"] == pytest.approx(achieved)
        precision = {"torch_fp32": "fp32", "ort_fp32": "fp32", "torch_bf16": "bf16", "ort_int8": "int8"}[
            row["variant"]]
        assert row["peak_gflops"] == PEAKS[precision]
        assert row["peak_fraction"] == pytest.approx(achieved / PEAKS[precision])


def test_variants_depend_on_the_device_the_model_and_a_triton_server():
    assert variants_for("clip_image") == LOCAL_VARIANTS
    assert variants_for("clip_image", triton=True) == (*LOCAL_VARIANTS, "triton_fp32")
    assert variants_for(UNET_STEP, triton=True) == ("torch_fp32", "torch_bf16")
    assert variants_for("sam_encoder", "cuda") == ("torch_fp32", "torch_fp16", "torch_bf16")


def test_serving_overhead_is_the_triton_p50_over_the_in_process_ort_p50_at_batch_one():
    rows = [{"model": "m", "variant": "ort_fp32", "batch": 1, "p50_ms": 4.0},
            {"model": "m", "variant": "triton_fp32", "batch": 1, "p50_ms": 5.0},
            {"model": "m", "variant": "triton_fp32", "batch": 8, "p50_ms": 50.0},
            {"model": "n", "variant": "ort_fp32", "batch": 1, "p50_ms": 4.0},
            {"model": "n", "variant": "triton_fp32", "batch": 1, "p50_ms": None},
            # the cpu profile serves int8 where its gate passed: compared with the in-process int8 session
            {"model": "q", "variant": "ort_fp32", "batch": 1, "p50_ms": 9.0},
            {"model": "q", "variant": "ort_int8", "batch": 1, "p50_ms": 2.0},
            {"model": "q", "variant": "triton_int8", "batch": 1, "p50_ms": 2.5}]
    assert serving_overhead(rows) == [
        {"model": "m", "precision": "fp32", "ort_threads": None, "served_threads": None, "ort_p50_ms": 4.0,
         "triton_p50_ms": 5.0, "overhead_ms": 1.0, "ratio": 1.25, "paired_calls": None, "ort_tail": None,
         "triton_tail": None},
        {"model": "q", "precision": "int8", "ort_threads": None, "served_threads": None, "ort_p50_ms": 2.0,
         "triton_p50_ms": 2.5, "overhead_ms": 0.5, "ratio": 1.25, "paired_calls": None, "ort_tail": None,
         "triton_tail": None}]


def test_serving_overhead_takes_the_alternating_blocks_timing_where_the_run_has_it():
    rows = [{"model": "m", "variant": "ort_fp32", "batch": 1, "p50_ms": 4.0},
            {"model": "m", "variant": "triton_fp32", "batch": 1, "p50_ms": 5.0, "paired_ort_p50_ms": 8.0,
             "paired_triton_p50_ms": 8.8, "paired_calls": 40},
            # the pairing failed: the rows' own p50s still give a ratio
            {"model": "n", "variant": "ort_fp32", "batch": 1, "p50_ms": 4.0},
            {"model": "n", "variant": "triton_fp32", "batch": 1, "p50_ms": 3.0, "paired_error": "OSError: gone"}]
    by_model = {r["model"]: r for r in serving_overhead(rows)}
    assert by_model["m"]["ratio"] == pytest.approx(1.1) and by_model["m"]["ort_p50_ms"] == 8.0
    assert by_model["m"]["paired_calls"] == 40
    assert by_model["n"]["ratio"] == pytest.approx(0.75) and by_model["n"]["paired_calls"] is None


def test_the_served_precision_comes_from_the_served_models_parity_json(tmp_path):
    from benchmarks.model_latency import served_precision

    (tmp_path / "clip_text" / "1").mkdir(parents=True)
    (tmp_path / "clip_text" / "1" / "parity.json").write_text('{"precision": "int8"}')
    assert served_precision(tmp_path, "clip_text") == "int8"
    assert served_precision(tmp_path, "clip_image") == "fp32"  # nothing recorded
    assert served_precision(None, "clip_text") == "fp32"


def test_speedup_is_the_torch_fp32_p50_over_the_variant_p50_at_the_same_batch(tiny_rows):
    baseline = {(r["model"], r["batch"]): r["p50_ms"] for r in tiny_rows if r["variant"] == "torch_fp32"}
    for row in tiny_rows:
        if row["variant"] == "torch_fp32":
            assert row["speedup_vs_torch_fp32"] == 1.0
        else:
            assert row["speedup_vs_torch_fp32"] == pytest.approx(baseline[(row["model"], row["batch"])]
                                                                 / row["p50_ms"])


def test_a_variant_that_failed_gets_no_speedup():
    rows = add_speedups([{"model": "m", "batch": 1, "variant": "torch_fp32", "p50_ms": 4.0},
                         {"model": "m", "batch": 1, "variant": "torch_bf16", "p50_ms": None},
                         {"model": "m", "batch": 1, "variant": "ort_fp32", "p50_ms": 2.0}])
    assert [r["speedup_vs_torch_fp32"] for r in rows] == [1.0, None, 2.0]


def test_sam_decoder_runs_at_batch_one_and_sam_encoder_stops_at_its_cap():
    assert model_batches("sam_decoder", [1, 8, 32]) == [1]
    assert model_batches(UNET_STEP, [1, 8, 32]) == [1]
    assert model_batches("sam_encoder", [1, 8, 32]) == [1, 8]
    assert model_batches("sam_encoder", [1, 8, 32], sam_encoder_max_batch=32) == [1, 8, 32]
    assert model_batches("clip_image", [1, 8, 32]) == [1, 8, 32]


def test_unknown_models_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        run(["resnet"], "tiny", [1], iterations=1, max_seconds=1.0, show_progress=False)


def test_write_report_renders_a_table_per_model_and_the_plots(tiny_rows, tmp_path):
    report = write_report({"machine": {"cpu_model": "test"}, "sections": {"model_latency": tiny_rows}}, tmp_path)
    text = report.read_text()
    assert "## Model latency: torch vs ONNX Runtime vs Triton" in text
    for model in MODELS:
        assert f"### {model} (" in text and "GFLOP per item)" in text
    for model in MODELS[:2]:  # the UNet step has one batch size: no latency-vs-batch plot
        assert (tmp_path / f"model_latency_{model}.png").stat().st_size > 0
        assert f"![{model} latency](model_latency_{model}.png)" in text
    assert "| variant | batch | threads | p50 ms |" in text and "| ort_int8 | 2 |" in text
    assert (tmp_path / "model_latency_speedup.png").stat().st_size > 0
    assert profile_sections(json.loads((tmp_path / "results.json").read_text()))["model_latency"] == tiny_rows


def test_a_model_that_cannot_be_prepared_gets_error_rows_and_the_others_still_run(monkeypatch, tmp_path):
    import benchmarks.model_latency as model_latency

    real = model_latency.prepare_subject

    def broken_for_clip_text(model, *args, **kwargs):
        if model == "clip_text":
            raise ImportError("no module named open_clip")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(model_latency, "prepare_subject", broken_for_clip_text)
    rows = run(["clip_text", "tryon_classifier"], "tiny", [1], iterations=1, max_seconds=1.0, show_progress=False,
               workdir=tmp_path)
    broken = [r for r in rows if r["model"] == "clip_text"]
    assert len(broken) == len(LOCAL_VARIANTS)
    assert all(r["p50_ms"] is None and "ImportError: no module named open_clip" in r["error"] for r in broken)
    assert all(r["error"] is None for r in rows if r["model"] == "tryon_classifier")


def test_a_precision_that_may_not_be_exported_is_reported_missing_instead(tmp_path):
    from export.runner import export_models

    fp32 = tmp_path / "fp32"
    export_models("tiny", repository=fp32, only=["clip_text"])
    rows = run(["clip_text"], "tiny", [1], iterations=1, max_seconds=1.0, show_progress=False, workdir=tmp_path,
               onnx_repositories={"fp32": fp32, "int8": tmp_path / "int8"}, export_missing=("fp32",))
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["ort_fp32"]["error"] is None
    assert "no int8 ONNX model here" in by_variant["ort_int8"]["error"]
    assert not (tmp_path / "int8" / "clip_text" / "1" / "model.onnx").exists()


def _served_rows(p50_ms: float = 5.0) -> list[dict]:
    return [{"model": "clip_text", "variant": "ort_fp32", "batch": 1, "p50_ms": p50_ms},
            {"model": "clip_text", "variant": "triton_fp32", "batch": 1, "p50_ms": p50_ms * 1.2}]


def test_the_alternating_timing_adds_its_p50s_tails_and_the_servers_split_to_the_triton_row(monkeypatch):
    from types import SimpleNamespace

    import benchmarks.model_latency as model_latency

    called = []
    monkeypatch.setattr(model_latency, "variant_call",
                        lambda subject, variant, *args, **kwargs: lambda: called.append(variant))
    # in-process: 3 ms, two calls of 6 ms; served: 4.4 ms, two of 13.2 ms (a tail of the server's own)
    monkeypatch.setattr(model_latency, "alternating_times",
                        lambda first, second, **kw: (first(), second(), called.append(kw))
                        and ([0.003] * 98 + [0.006] * 2, [0.0044] * 98 + [0.0132] * 2))
    # Triton's cumulative statistics before and after the blocks: 100 calls, 4.3 ms of request time each
    totals = iter([{"success": (5, 0), "queue": (5, 0), "compute_input": (5, 0), "compute_infer": (5, 0),
                    "compute_output": (5, 0)},
                   {"success": (105, 430_000_000), "queue": (105, 10_000_000), "compute_input": (105, 20_000_000),
                    "compute_infer": (105, 390_000_000), "compute_output": (105, 10_000_000)}])
    monkeypatch.setattr(model_latency, "_triton_stage_totals", lambda url, model: next(totals))
    rows = _served_rows()
    model_latency.add_paired_overhead(SimpleNamespace(model="clip_text", make_feeds=lambda batch: {}), rows, {},
                                      "localhost:1", iterations=30, max_seconds=10.0, warmup=0)
    assert called[:2] == ["ort_fp32", "triton_fp32"]
    assert called[2]["blocks"] == 2 and called[2]["warmup"] == 0  # a quick run: two blocks, no warm-up
    assert rows[1]["paired_calls"] == 100 and rows[1]["paired_triton_p50_ms"] == pytest.approx(4.4)
    assert rows[1]["paired_ort_tail"] == pytest.approx(2.0) and rows[1]["paired_triton_tail"] == pytest.approx(3.0)
    split = rows[1]["paired_split"]
    assert split["server_calls"] == 100 and split["queue_ms"] == pytest.approx(0.1)
    assert split["input_ms"] == pytest.approx(0.2) and split["output_ms"] == pytest.approx(0.1)
    assert split["ort_mean_ms"] == pytest.approx(3.06) and split["triton_mean_ms"] == pytest.approx(4.576)
    # the client's 4.576 ms less Triton's 4.3; compute_infer's 3.9 less the in-process 3.06
    assert split["outside_ms"] == pytest.approx(0.276) and split["backend_ms"] == pytest.approx(0.84)
    overhead = serving_overhead(rows)[0]
    assert overhead["ratio"] == pytest.approx(4.4 / 3) and overhead["triton_tail"] == pytest.approx(3.0)
    assert overhead["split_outside_ms"] == pytest.approx(0.276)


def test_a_failed_alternating_timing_is_reported_and_the_unpaired_ratio_stays(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import benchmarks.model_latency as model_latency

    def unreachable(*args, **kwargs):
        raise ConnectionError("Triton is down")

    monkeypatch.setattr(model_latency, "variant_call", unreachable)
    rows = _served_rows()
    model_latency.add_paired_overhead(SimpleNamespace(model="clip_text", make_feeds=lambda batch: {}), rows, {},
                                      "localhost:1", iterations=30, max_seconds=10.0, warmup=1)
    assert rows[1]["paired_error"] == "ConnectionError: Triton is down" and "paired_calls" not in rows[1]
    assert serving_overhead(rows)[0]["ratio"] == pytest.approx(1.2)
    for row in rows:
        row.update({key: row.get(key) for _, key, _ in model_latency.COLUMNS}, profile="base", device="cpu",
                   int8_settings=None, outputs=None, error=None)
    text = model_latency.render_model_latency(rows, tmp_path)
    assert "- clip_text: the alternating timing failed (ConnectionError: Triton is down); its ratio is unpaired" in text
