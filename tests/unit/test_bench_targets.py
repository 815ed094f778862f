"""benchmarks.targets on synthetic rows, and the report with two profiles side by side (no timing)."""

from __future__ import annotations

import json

import pytest

from benchmarks import http_load, import_throughput, search_models  # noqa: F401 - they register their sections
from benchmarks.report import load_results, normalize_results, profile_sections, write_report
from benchmarks.targets import TARGETS, combined_items_per_s, compute, render_targets, tail_ratios


def http(scenario: str, p50_ms: float, concurrency: int = 1, ok: int = 40) -> dict:
    return {"scenario": scenario, "concurrency": concurrency, "ok": ok, "requests": ok, "errors": 0,
            "error_kinds": {}, "throughput_rps": 1000.0 * concurrency / p50_ms, "p50_ms": p50_ms,
            "p95_ms": p50_ms * 1.1, "p99_ms": p50_ms * 1.2, "http_calls": 1, "cache": "none", "notes": ""}


def model(name: str, variant: str, batch: int, p50_ms: float, p99_ms: float | None = None, count: int = 30) -> dict:
    return {"model": name, "variant": variant, "batch": batch, "p50_ms": p50_ms, "p99_ms": p99_ms or p50_ms * 1.3,
            "count": count, "items_per_s": 1000.0 * batch / p50_ms, "threads": 2}


def sections(new_click_ms: float = 900.0, cached_ms: float = 35.0, import_per_s: float = 2.0) -> dict:
    """A run that meets every target (with the defaults)."""
    return {
        "http_load": [http("sam_click_new_image", new_click_ms), http("sam_click_new_image", 5000.0, concurrency=4),
                      http("sam_click_cached_image", cached_ms), http("search_text", 70.0),
                      http("search_image", 220.0), http("search_text_image", 290.0)],
        "search_models": [{"scenario": "search_text", "models": "clip_text_embed", "p50_ms": 65.0},
                          {"scenario": "search_image", "models": "clip_image", "p50_ms": 200.0},
                          {"scenario": "search_text_image", "models": "clip_image + clip_text_embed",
                           "p50_ms": 265.0}],
        "model_latency": [
            model("clip_image", "ort_fp32", 1, 200.0), model("clip_image", "triton_fp32", 1, 210.0),
            model("clip_image", "triton_fp32", 8, 1200.0),  # 6.67 items/s: its best batch
            model("tryon_classifier", "ort_fp32", 1, 150.0), model("tryon_classifier", "triton_fp32", 1, 160.0),
            model("tryon_classifier", "triton_fp32", 8, 2000.0),  # 4 items/s < 6.25 at batch 1
            model("sam_encoder", "ort_fp32", 1, 600.0), model("sam_encoder", "triton_fp32", 1, 620.0, 900.0, count=25),
            model("sam_decoder", "torch_fp32", 1, 50.0)],
        "perf_analyzer": [
            {"model": "clip_image", "batch": 1, "concurrency": 1, "p50_ms": 205.0, "p99_ms": 240.0, "stable": True,
             "error": None},
            {"model": "tryon_classifier", "batch": 1, "concurrency": 1, "p50_ms": None, "p99_ms": None,
             "stable": False, "error": "not stable"},
            {"model": "clip_image", "batch": 1, "concurrency": 4, "p50_ms": 800.0, "p99_ms": 5000.0, "stable": True,
             "error": None}],
        # combined = 1 / (1/6.667 + 1/6.25) = 3.226 products/s
        "import_throughput": [{"rows": 64, "import_rows_per_s": import_per_s}],
    }


def by_target(rows: list[dict]) -> dict[str, dict]:
    return {r["target"]: r for r in rows}


def test_search_targets_divide_the_paired_p50s_when_the_run_has_them():
    """The paired rows time both halves in the same minutes; the separate steps' rows are only the fallback."""
    run = sections()
    run["search_overhead"] = [{"scenario": "search_text", "models": "clip_text_embed", "pairs": 40,
                               "http_p50_ms": 80.0, "models_p50_ms": 64.0},
                              {"scenario": "search_image", "models": "clip_image", "pairs": 40,
                               "http_p50_ms": None, "models_p50_ms": None, "error": "RuntimeError: 503"}]
    rows = by_target(compute(run, "cpu"))
    assert rows["search_text"]["value"] == pytest.approx(80 / 64) and rows["search_text"]["met"] is False
    assert "40 pairs" in rows["search_text"]["shown"]
    assert rows["search_image"]["value"] == pytest.approx(220 / 200)  # its paired row failed: the fallback


def test_a_ratio_just_over_its_bound_shows_a_third_decimal_so_it_never_reads_as_the_bound():
    run = sections()
    run["search_overhead"] = [{"scenario": "search_image", "models": "clip_image", "pairs": 40,
                               "http_p50_ms": 76.65, "models_p50_ms": 66.46}]  # 1.1533: "1.15" would read as met
    row = by_target(compute(run, "cpu"))["search_image"]
    assert row["met"] is False and row["shown"].startswith("1.153× ")
    target = TARGETS["search_text"]
    assert target.ratio_text(1.1533) == "1.153" and target.ratio_text(1.15) == "1.15"
    assert target.ratio_text(1.22) == "1.22" and target.ratio_text(1.1449) == "1.14"
    assert target.ratio_text(1.1451) == "1.145"  # met, and shown below the bound as it is
    assert TARGETS["serving_overhead"].ratio_text(1.0962) == "1.096"


def test_the_import_target_divides_by_the_best_batches_timed_around_the_import_when_the_row_has_them():
    run = sections(import_per_s=3.0)
    run["import_throughput"] = [{"rows": 64, "import_rows_per_s": 3.0, "clip_image_best_per_s": 6.0,
                                 "clip_image_best_batch": 1, "classifier_best_per_s": 12.0,
                                 "classifier_best_batch": 8, "best_combined_per_s": 4.0}]
    row = by_target(compute(run, "cpu"))["import_throughput"]
    assert row["value"] == pytest.approx(0.75) and row["met"] is False
    assert "batch 1" in row["detail"] and "batch 8" in row["detail"]


def test_every_target_is_computed_from_the_rows_and_met_on_a_good_cpu_run():
    rows = by_target(compute(sections(import_per_s=3.0), "cpu"))
    assert list(rows) == list(TARGETS)
    assert rows["new_photo_click"]["value"] == pytest.approx(0.9) and rows["new_photo_click"]["met"] is True
    assert rows["cached_click"]["value"] == pytest.approx(35.0) and rows["cached_click"]["met"] is True
    assert rows["search_text"]["value"] == pytest.approx(70 / 65)
    assert rows["search_text_image"]["value"] == pytest.approx(290 / 265)
    assert rows["serving_overhead"]["value"] == pytest.approx(160 / 150)  # the worst model: the classifier
    assert "tryon_classifier" in rows["serving_overhead"]["shown"]
    assert rows["p99_over_p50"]["value"] == pytest.approx(900 / 620)
    assert rows["import_throughput"]["value"] == pytest.approx(3.0 / combined_items_per_s(1000 * 8 / 1200, 1000 / 160))
    assert all(r["met"] is True for r in rows.values()), rows


def test_missed_targets_say_no_and_the_new_photo_click_is_judged_on_the_cpu_profile_only():
    slow = sections(new_click_ms=11_700.0, cached_ms=268.0, import_per_s=2.0)
    cpu, base = by_target(compute(slow, "cpu")), by_target(compute(slow, "base"))
    assert cpu["new_photo_click"]["met"] is False and cpu["cached_click"]["met"] is False
    assert base["new_photo_click"]["met"] is None and base["new_photo_click"]["judged"] is False
    assert base["new_photo_click"]["value"] == pytest.approx(11.7)
    assert cpu["import_throughput"]["met"] is False  # 2.0 / 3.23 = 62 %


def test_a_run_without_the_rows_reports_not_measured_never_met():
    rows = compute({}, "cpu")
    assert all(r["value"] is None and r["met"] is None and r["shown"] == "not measured" for r in rows)


def test_p99_over_p50_prefers_a_clean_perf_analyzer_level_and_falls_back_to_model_latency():
    tails = tail_ratios(sections())
    assert tails["clip_image"]["source"].startswith("perf_analyzer")
    assert tails["clip_image"]["ratio"] == pytest.approx(240 / 205)
    # the classifier's level 1 was not stable: its triton_fp32 batch-1 row stands in
    assert tails["tryon_classifier"]["source"] == "model_latency triton_fp32 batch 1"
    assert tails["sam_encoder"]["count"] == 25


def test_combined_throughput_is_the_harmonic_combination():
    assert combined_items_per_s(10.0, 10.0) == pytest.approx(5.0)
    assert combined_items_per_s(6.0, 3.0) == pytest.approx(2.0)


def test_the_targets_table_has_one_value_and_met_column_per_profile():
    text = render_targets({"cpu": sections(), "base": sections(new_click_ms=11_700.0)})
    header = text.splitlines()[2]
    assert header.startswith("| target | goal | cpu: measured | cpu: met | base: measured | base: met | from |")
    assert "not judged" in text and "11.7 s" in text and "0.9 s" in text
    assert "high-percentile estimate" in text  # sam_encoder's p99 of 25 calls


def test_the_report_shows_targets_first_then_each_profiles_sections_with_their_plots(tmp_path):
    def rendered(run: dict) -> dict:  # the sections whose synthetic rows carry every field their renderer reads
        return {k: run[k] for k in ("http_load", "search_models", "import_throughput")}

    http_rows = sections()["http_load"]
    results = {"machine": {"cpu_model": "test"},
               "profiles": {"cpu": {"sections": rendered(sections())},
                            "base": {"sections": rendered(sections(new_click_ms=11_700.0))}}}
    text = write_report(results, tmp_path).read_text()
    targets = text.index("## Targets (issue 12), profiles cpu, base")
    assert text.index("| field | value |") < targets < text.index("## Orchestrator HTTP load (cpu profile)")
    cpu_http, base_http = "## Orchestrator HTTP load (cpu profile)", "## Orchestrator HTTP load (base profile)"
    assert text.index(cpu_http) < text.index(base_http)
    for profile in ("cpu", "base"):  # each profile's plots in its own folder, linked from the report
        assert (tmp_path / profile / "http_load_throughput.png").stat().st_size > 0
        assert f"![throughput]({profile}/http_load_throughput.png)" in text
    assert profile_sections(json.loads((tmp_path / "results.json").read_text()), "cpu")["http_load"] == http_rows


def test_python_m_benchmarks_report_renders_a_folder_again_as_the_run_wrote_it(tmp_path):
    """Run as a script, benchmarks/report.py is `__main__`; the sections and the targets summary register with the
    importable `benchmarks.report`, so the script must render through that one (it once wrote a report without its
    targets and with generic tables)."""
    import subprocess
    import sys

    results = {"machine": {"cpu_model": "test"},
               "profiles": {"cpu": {"sections": {k: sections()[k] for k in ("http_load", "search_models")}}}}
    written = write_report(results, tmp_path).read_text()
    (tmp_path / "report.md").unlink()
    subprocess.run([sys.executable, "-m", "benchmarks.report", str(tmp_path)], check=True, capture_output=True,
                   timeout=120)
    again = (tmp_path / "report.md").read_text()
    assert "## Targets (issue 12), profile cpu" in again and again == written


def test_a_results_file_without_profiles_loads_as_the_base_profile(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"machine": {"cpu_model": "old"},
                                                       "sections": {"faiss_scale": [{"x": 1}]}}))
    loaded = load_results(tmp_path)
    assert loaded == {"machine": {"cpu_model": "old"}, "profiles": {"base": {"sections": {"faiss_scale": [{"x": 1}]}}}}
    assert normalize_results(loaded) == loaded
    assert load_results(tmp_path / "missing") == {"machine": {}, "profiles": {}}


def test_server_timing_splits_an_http_search_into_its_parts():
    from benchmarks.search_overhead import split_p50s

    answers = [{"preprocess": 4.0, "triton.clip_image": 60.0, "index": 3.0, "store": 1.0, "app": 70.0},
               {"preprocess": 6.0, "triton.clip_image": 80.0, "index": 3.0, "store": 1.0, "app": 92.0}]
    split = split_p50s([73.0, 96.0], answers)
    assert split == {"outside": 3.5, "app": 81.0, "triton": 70.0, "preprocess": 5.0, "index": 3.0, "store": 1.0,
                     "rest": 2.0, "preprocess.overlapped": 0.0}
    # a crop timed beside the text call is shown, and not taken from the app's time a second time
    beside = split_p50s([50.0], [{"triton.clip_text_embed": 15.0, "preprocess.overlapped": 5.0,
                                  "triton.clip_image": 30.0, "index": 1.0, "store": 0.1, "app": 48.0}])
    assert beside["preprocess.overlapped"] == 5.0 and beside["preprocess"] == 0.0
    assert beside["rest"] == pytest.approx(48.0 - 45.0 - 1.1)
    text_only = split_p50s([40.0], [{"triton.clip_text_embed": 31.0, "triton.clip_image": 2.0, "app": 37.0}])
    assert text_only["triton"] == 33.0 and text_only["preprocess"] == 0 and text_only["rest"] == 4.0
    assert split_p50s([40.0], [{}]) is None and split_p50s([], []) is None  # a server without the header


def test_the_search_split_shows_the_bare_http_floor_and_older_runs_render_without_it(tmp_path):
    from benchmarks.search_overhead import render_search_overhead

    row = {"scenario": "search_text", "models": "clip_text_embed", "pairs": 40, "http_p50_ms": 21.0,
           "models_p50_ms": 17.5, "ratio": 1.2, "error": None,
           "server_timing_p50_ms": {"outside": 1.0, "app": 20.0, "triton": 17.5, "preprocess": 0.0, "index": 1.3,
                                    "store": 0.05, "rest": 0.8}}
    table = render_search_overhead([{**row, "bare_http_p50_ms": 1.42, "bare_http_warm_p50_ms": 0.41}], tmp_path)
    split_row = next(line for line in table.splitlines() if line.startswith("| search_text | 21 |"))
    assert split_row.endswith("| 1.42 | 0.41 |")
    older = render_search_overhead([row], tmp_path)  # a results.json written before the floor was timed
    assert next(line for line in older.splitlines() if line.startswith("| search_text | 21 |")).endswith("| — | — |")
