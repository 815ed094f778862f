"""benchmarks.int8_recipes: each recipe goes through the real exporter on this CPU and an emulated AVX2 one, and
the rows merge into the machine's report."""

from __future__ import annotations

import pytest

from benchmarks import int8_recipes
from benchmarks.report import load_results, profile_sections, write_report
from export import emulation


@pytest.mark.slow
@pytest.mark.skipif(emulation.qemu_path() is None, reason="qemu-x86_64 is not installed (Debian package qemu-user)")
def test_8_bit_weights_fail_on_emulated_avx2_and_the_default_gives_the_same_metrics_everywhere(tmp_path):
    rows = int8_recipes.run(["clip_text"], "tiny", (0,), "Haswell", iterations=2, workdir=tmp_path)
    parity = {row["recipe"]: row for row in rows if row["kind"] == "parity"}
    assert set(parity) == set(int8_recipes.RECIPES)
    assert parity["8-bit"]["emulated_passed"] is False and "(needs >= 0.99)" in parity["8-bit"]["emulated_metrics"]
    default = parity["7-bit (default)"]
    assert default["passed"] and default["emulated_passed"] and default["emulated_metrics"] == default["metrics"]
    latency = [row for row in rows if row["kind"] == "latency"]
    assert {(row["recipe"], row["batch"]) for row in latency} == \
        {(recipe, batch) for recipe in ("fp32", *int8_recipes.RECIPES) for batch in int8_recipes.BATCHES}
    assert all(row["p50_ms"] > 0 for row in latency)


def test_the_static_classifier_is_not_compared_with_uint8_weights():
    assert "uint8 weights" not in int8_recipes.recipes_for("tryon_classifier")
    assert "uint8 weights" in int8_recipes.recipes_for("clip_text")


def test_a_later_run_replaces_its_own_rows_and_keeps_the_others(tmp_path):
    old = [{"kind": "parity", "model": "clip_text", "seed": 0, "recipe": "8-bit", "passed": True},
           {"kind": "parity", "model": "tryon_classifier", "seed": 1, "recipe": "8-bit", "passed": True}]
    new = [{"kind": "parity", "model": "clip_text", "seed": 0, "recipe": "8-bit", "passed": False, "metrics": "x"},
           {"kind": "latency", "model": "clip_text", "recipe": "fp32", "batch": 1, "p50_ms": 1.0, "calls": 2}]
    rows = int8_recipes.merged(old, new)
    assert rows == [old[1], *new]
    text = write_report({"machine": {"cpu_model": "test"}, "sections": {"int8_recipes_tiny": rows}},
                        tmp_path).read_text()
    assert "## int8 recipes (tiny profile)" in text and "| clip_text | 0 | 8-bit |" in text and "| fp32 | 1 |" in text


def test_a_run_for_other_models_adds_to_the_rows_already_in_the_folder(tmp_path, monkeypatch):
    def fake_run(models, profile, *args):
        return [{"kind": "parity", "model": m, "seed": 0, "recipe": "8-bit", "passed": True} for m in models]

    monkeypatch.setattr(int8_recipes, "run", fake_run)
    int8_recipes.main(["--only", "clip_text", "--out", str(tmp_path)])
    int8_recipes.main(["--only", "sam_decoder", "--out", str(tmp_path)])
    rows = profile_sections(load_results(tmp_path))["int8_recipes_tiny"]
    assert [row["model"] for row in rows] == ["clip_text", "sam_decoder"]


def test_its_sections_keep_their_own_titles_in_a_report_of_several_profiles(tmp_path):
    rows = [{"kind": "parity", "model": "clip_text", "seed": 0, "recipe": "8-bit", "passed": True}]
    text = write_report({"machine": {"cpu_model": "test"}, "profiles": {
        "base": {"sections": {"int8_recipes_tiny": rows, "run": [{"mode": "full"}]}},
        "cpu": {"sections": {"run": [{"mode": "full"}]}}}}, tmp_path).read_text()
    assert "\n## int8 recipes (tiny profile)\n" in text and "\n## Run (cpu profile)\n" in text
