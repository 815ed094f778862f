"""benchmarks.faiss_scale, benchmarks.report and benchmarks.machine on tiny catalogs (no timing assertions)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from benchmarks.faiss_scale import main, recall_at_k, run, scaled_factory, synthetic_embeddings
from benchmarks.machine import machine_id, machine_info
from benchmarks.report import markdown_table, normalize_results, profile_sections, write_report

ROW_FIELDS = {"index", "factory", "search_params", "n_vectors", "dim", "k", "queries", "faiss_threads", "build_s",
              "search_count", "search_mean_ms", "search_p50_ms", "search_p95_ms", "search_p99_ms", "search_min_ms",
              "search_max_ms", "search_items_per_s", "memory_bytes", "recall_at_k"}


@pytest.fixture(scope="module")
def tiny_rows() -> list[dict]:
    return run([1000, 2000], dim=32, queries=20, factory="IVF16,Flat", search_params="nprobe=4", iterations=5,
               max_seconds=1.0, show_progress=False)


def test_rows_have_every_field_for_both_indexes_at_every_size(tiny_rows):
    assert [(r["index"], r["n_vectors"]) for r in tiny_rows] == [
        ("Flat", 1000), ("IVF16,Flat", 1000), ("Flat", 2000), ("IVF16,Flat", 2000)]
    for row in tiny_rows:
        assert set(row) == ROW_FIELDS
        assert row["memory_bytes"] > 0 and row["search_count"] >= 1
    json.dumps(tiny_rows)


def test_exact_recall_is_one_and_approximate_recall_is_a_fraction(tiny_rows):
    assert all(r["recall_at_k"] == 1.0 for r in tiny_rows if r["index"] == "Flat")
    assert all(0.0 <= r["recall_at_k"] <= 1.0 for r in tiny_rows if r["index"] != "Flat")


def test_ivf_lists_are_scaled_down_to_39_training_points_per_centroid():
    assert scaled_factory("IVF1024,PQ64", 10_000) == "IVF256,PQ64"
    assert scaled_factory("IVF1024,PQ64", 1_000_000) == "IVF1024,PQ64"
    assert scaled_factory("HNSW32,Flat", 100) == "HNSW32,Flat"


def test_graph_indexes_from_a_factory_string_are_measured():
    rows = run([500], dim=16, queries=5, factory="HNSW8,Flat", search_params="efSearch=16", iterations=3,
               max_seconds=1.0, show_progress=False)
    assert rows[1]["factory"] == "HNSW8,Flat" and 0.0 <= rows[1]["recall_at_k"] <= 1.0


def test_synthetic_embeddings_are_seeded_unit_vectors():
    first, _ = synthetic_embeddings(300, 8, seed=1, clusters=10)
    again, _ = synthetic_embeddings(300, 8, seed=1, clusters=10)
    assert first.dtype == np.float32 and first.shape == (300, 8)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first, again)


def test_recall_counts_shared_ids_per_query():
    truth = np.array([[1, 2], [3, 4]])
    assert recall_at_k(np.array([[2, 1], [3, 9]]), truth) == 0.75


def test_write_report_creates_json_markdown_and_plots(tiny_rows, tmp_path):
    results = {"machine": {"cpu_model": "Test CPU", "versions": {"numpy": "1.26"}},
               "sections": {"faiss_scale": tiny_rows, "something_new": [{"a": 1, "b": 0.5}]}}
    report = write_report(results, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == normalize_results(results)
    assert normalize_results(results)["profiles"]["base"]["sections"] == results["sections"]
    text = report.read_text()
    assert "versions.numpy" in text and "recall@10" in text and "| a | b |" in text
    assert list((tmp_path / "out").glob("*.png"))


def test_markdown_table_renders_missing_values_as_dashes():
    assert markdown_table([{"a": 1}, {"b": 2.5}]).splitlines()[-1] == "| — | 2.5 |"


def test_cli_quick_run_adds_its_section_to_existing_results(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"sections": {"other": [{"x": 1}]}}))
    main(["--sizes", "600", "--dim", "16", "--queries", "5", "--factory", "IVF4,Flat", "--iterations", "2",
          "--out", str(tmp_path)])
    sections = profile_sections(json.loads((tmp_path / "results.json").read_text()))
    assert set(sections) == {"other", "faiss_scale"}


@pytest.mark.parametrize("info", [
    {"cpu_model": "Intel(R) Xeon(R) Processor @ 2.50GHz", "logical_cores": 2, "gpu": None},
    {"cpu_model": "AMD EPYC 7R13 Processor", "logical_cores": 16, "gpu": "NVIDIA H200"},
    {"cpu_model": "../../etc/passwd; rm -rf /", "logical_cores": 4, "gpu": "NVIDIA H100 80GB HBM3"},
    {},
])
def test_machine_id_is_a_filesystem_safe_slug(info):
    slug = machine_id(info)
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", slug) and ".." not in slug and len(slug) < 80


def test_machine_id_names_cpu_cores_and_accelerator():
    assert machine_id({"cpu_model": "Intel(R) Xeon(R) Processor @ 2.50GHz", "logical_cores": 2, "gpu": None}) \
        == "intel-xeon-2.50ghz-2c-cpu"
    assert machine_id({"cpu_model": "AMD EPYC 7R13 Processor", "logical_cores": 16, "gpu": "NVIDIA H200"}) \
        == "amd-epyc-7r13-16c-nvidia-h200"


def test_machine_id_records_the_torch_and_onnxruntime_versions():
    info = {"cpu_model": "Intel(R) Xeon(R) Processor @ 2.50GHz", "logical_cores": 2, "gpu": None,
            "versions": {"torch": "2.14.1+cpu", "onnxruntime": "1.32.0", "numpy": "1.26.4"}}
    assert machine_id(info) == "intel-xeon-2.50ghz-2c-cpu-torch2.14.1-ort1.32.0"
    assert machine_id({**info, "versions": {"torch": "2.11.0"}}) == "intel-xeon-2.50ghz-2c-cpu-torch2.11.0"


def test_machine_info_reports_versions_and_cores_and_names_this_machine_safely():
    info = machine_info()
    assert info["logical_cores"] >= 1 and info["versions"]["numpy"] and info["versions"]["python"]
    json.dumps(info)
    test_machine_id_is_a_filesystem_safe_slug(info)


def test_short_count_labels_catalog_sizes():
    from benchmarks.report import short_count

    assert [short_count(n) for n in (128, 10_000, 50_000, 1_000_000)] == ["128", "10k", "50k", "1M"]
