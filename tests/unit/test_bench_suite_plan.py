"""benchmarks.suite's plan (which steps, which budget, where the report goes) and benchmarks.original's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.model_latency import UNET_STEP
from benchmarks.original import ORIGINAL, compare
from benchmarks.report import load_results, save_section
from benchmarks.suite import FULL, GPU, QUICK, RESULTS_ROOT, STEPS, BenchRun, Recorder

INFO = {"cpu_model": "Intel(R) Xeon(R) Processor @ 2.50GHz", "logical_cores": 2, "gpu": None,
        "versions": {"torch": "2.14.1", "onnxruntime": "1.32.0"}}


def test_a_quick_run_reports_into_an_ignored_scratch_folder_and_a_full_run_into_the_committed_one(tmp_path):
    quick = BenchRun(quick=True, scratch=tmp_path)
    assert quick.out_dir(INFO) == tmp_path / "intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0-quick"
    assert BenchRun().out_dir(INFO) == RESULTS_ROOT / "intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0"
    assert BenchRun(out=tmp_path / "mine").out_dir(INFO) == tmp_path / "mine"


def test_budgets_follow_the_mode_and_the_device():
    assert BenchRun(quick=True).sizes() is QUICK
    assert BenchRun().sizes() is FULL
    assert BenchRun(device="cuda").sizes() is GPU
    assert QUICK.warmup == 0 and FULL.warmup == 1
    assert BenchRun().steps() == STEPS


@pytest.mark.parametrize("only, steps", [(("faiss",), ("faiss",)), (("http", "peaks"), ("peaks", "http")),
                                         (("import", "http"), ("http", "import"))])
def test_only_picks_steps_in_the_suites_order(only, steps):
    assert BenchRun(only=only).steps() == steps


def test_the_cpu_profile_skips_what_does_not_depend_on_its_sam_encoder_unless_asked():
    cpu = BenchRun(profile="cpu")
    assert "faiss" not in cpu.steps() and {"models", "triton", "http", "import"} <= set(cpu.steps())
    assert BenchRun(profile="cpu", only=("faiss",)).steps() == ("faiss",)
    assert UNET_STEP not in cpu.models() and UNET_STEP in BenchRun().models()


def test_the_full_budget_keeps_the_targets_numbers_meaningful():
    assert FULL.http_requests >= 30 and 1 in FULL.http_concurrency and FULL.search_calls >= 30
    assert FULL.iterations >= 30 and 1 in FULL.perf_concurrency and 1 in FULL.batches
    assert FULL.variant_limits() == {"torch_bf16": 1}


def test_a_second_profile_joins_the_machine_folder_and_a_rerun_replaces_only_its_own_sections(tmp_path):
    Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="base").save("faiss_scale", [{"x": 1}])
    cpu = Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="cpu")
    cpu.save("http_load", [{"y": 1}])
    assert set(load_results(tmp_path)["profiles"]) == {"base", "cpu"}
    Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="cpu").save("run", [{"z": 1}])
    profiles = load_results(tmp_path)["profiles"]
    assert profiles["cpu"]["sections"] == {"run": [{"z": 1}]}  # a full rerun of cpu starts its sections afresh
    assert profiles["base"]["sections"] == {"faiss_scale": [{"x": 1}]}
    Recorder(tmp_path, INFO, keep_other_sections=True, render=False, profile="base").save("run", [{"w": 1}])
    assert set(load_results(tmp_path)["profiles"]["base"]["sections"]) == {"faiss_scale", "run"}


def test_a_full_run_keeps_the_sections_other_commands_wrote_in_its_profile(tmp_path):
    save_section("int8_recipes_tiny", [{"kind": "parity"}], tmp_path)  # what benchmarks.int8_recipes does
    Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="base").save("model_latency", [{"a": 1}])
    Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="base").save("http_load", [{"b": 1}])
    sections = load_results(tmp_path)["profiles"]["base"]["sections"]
    assert sections == {"int8_recipes_tiny": [{"kind": "parity"}], "http_load": [{"b": 1}]}


def test_a_full_run_keeps_the_results_it_replaces_in_a_file_of_their_own(tmp_path):
    from benchmarks.report import main as render_main
    from benchmarks.suite import PREVIOUS_RESULTS_FILE

    first_run = [{"mode": "full", "profile": "cpu", "device": "cpu", "steps": "peaks models", "wall_s": 10.0}]
    first = Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="cpu")
    assert first.backup is None  # nothing to replace yet
    first.save("matmul_peak", [])
    first.save("run", first_run)
    before = (tmp_path / "results.json").read_text()
    # a second full run of the profile, stopped after its first step: its earlier results are in the backup
    second = Recorder(tmp_path, INFO, keep_other_sections=False, render=False, profile="cpu")
    second.save("matmul_peak", [])
    assert second.backup == tmp_path / PREVIOUS_RESULTS_FILE and second.backup.read_text() == before
    assert load_results(tmp_path)["profiles"]["cpu"]["sections"] == {"matmul_peak": []}
    # restoring it: move it back and render the report again
    second.backup.replace(tmp_path / "results.json")
    render_main([str(tmp_path)])
    assert load_results(tmp_path)["profiles"]["cpu"]["sections"] == {"matmul_peak": [], "run": first_run}
    assert "| full | cpu | cpu | peaks models |" in (tmp_path / "report.md").read_text()
    # a run of some steps replaces only those: no backup
    assert Recorder(tmp_path, INFO, keep_other_sections=True, render=False, profile="cpu").backup is None


def test_a_full_run_renders_the_int8_recipe_sections_it_keeps_with_their_own_tables(tmp_path):
    rows = [{"kind": "parity", "model": "clip_text", "seed": 0, "recipe": "8-bit", "cpu": "avx2", "passed": True}]
    save_section("int8_recipes_tiny", rows, tmp_path)
    Recorder(tmp_path, INFO, keep_other_sections=False, render=True, profile="cpu").save("run", [{"mode": "full"}])
    text = (tmp_path / "report.md").read_text()
    assert "\n## int8 recipes (tiny profile)\n" in text and "| clip_text | 0 | 8-bit | avx2 | True |" in text


def test_a_section_the_suite_does_not_own_is_refused():
    with pytest.raises(ValueError, match="SUITE_SECTIONS"):
        Recorder(Path("/nonexistent"), INFO, keep_other_sections=True, render=False).save("int8_recipes_tiny", [])


def test_the_suite_sections_are_the_ones_its_steps_write():
    from benchmarks import (
        faiss_scale,
        flops,
        http_load,
        import_throughput,
        model_latency,
        original,
        perf_analyzer,
        search_models,
        search_overhead,
    )
    from benchmarks.suite import SUITE_SECTIONS

    written = {flops.PEAK_SECTION, model_latency.SECTION, perf_analyzer.SECTION, http_load.SECTION,
               search_overhead.SECTION, original.SECTION, search_models.SECTION, import_throughput.SECTION,
               faiss_scale.SECTION, "run"}
    assert set(SUITE_SECTIONS) == written


def test_the_triton_step_asks_perf_analyzer_for_a_real_stability_threshold(monkeypatch):
    from benchmarks import perf_analyzer, suite

    calls = []
    monkeypatch.setattr(perf_analyzer, "sweep", lambda url, model, **kw: calls.append(kw) or [])
    suite._perf_analyzer("127.0.0.1:8001", FULL)
    assert calls and all(kw["stability_pct"] == 10.0 and kw["max_trials"] == FULL.perf_max_trials for kw in calls)


def http_row(scenario: str, concurrency: int, p50_ms: float | None, p95_ms: float | None) -> dict:
    return {"scenario": scenario, "concurrency": concurrency, "p50_ms": p50_ms, "p95_ms": p95_ms, "errors": 0}


def test_the_original_table_is_compared_at_concurrency_one_with_its_onnx_bound():
    rows = compare([http_row("search_text", 1, 80.0, 100.0), http_row("search_text", 2, 150.0, 200.0),
                    http_row("search_text_image", 1, 1000.0, 2000.0), http_row("sam_click_new_image", 1, None, None),
                    http_row("not_a_scenario", 1, 1.0, 1.0)])
    by_scenario = {r["scenario"]: r for r in rows}
    assert set(by_scenario) == {"search_text", "search_text_image", "sam_click_new_image"}
    text = by_scenario["search_text"]
    assert text["original_onnx_s"] == ORIGINAL["single_search"].onnx_s == "< 1"
    assert text["ours_p50_s"] == pytest.approx(0.08) and text["within_original_onnx_bound"] is True
    assert text["original_bound_over_ours_p50"] == pytest.approx(1.0 / 0.08)
    assert by_scenario["search_text_image"]["within_original_onnx_bound"] is False  # p95 2 s > 1.5 s
    assert by_scenario["sam_click_new_image"]["within_original_onnx_bound"] is None  # nothing succeeded


def test_rendering_a_folder_without_results_says_so(tmp_path, capsys):
    from benchmarks.report import main as render_main

    with pytest.raises(SystemExit):
        render_main([str(tmp_path)])
    assert "results.json does not exist" in capsys.readouterr().err
