"""benchmarks.import_throughput measures every rate on the tiny models (no timing assertions)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.import_throughput import measure

pytestmark = pytest.mark.integration


def test_import_throughput_reports_every_rate(triton_server, tmp_path):
    result = asyncio.run(measure(triton_server.grpc_url, rows=12, batch_size=4, workdir=tmp_path, rounds=2))
    for key in ("clip_image_per_s", "classifier_per_s", "both_models_per_s", "import_rows_per_s"):
        assert result[key] > 0, key
    # two imports (the second re-embeds every row), each next to its own timing of the models; the lower one counts
    assert result["rounds"] == 2 and len(result["round_shares"]) == 2
    assert result["import_over_best"] == min(result["round_shares"])
    assert result["import_over_best"] == pytest.approx(result["import_rows_per_s"] / result["best_combined_per_s"])
    assert result["clip_image_best_batch"] in (1, 4, 8) and result["classifier_best_batch"] in (1, 4, 8)
    assert result["import_over_clip"] == pytest.approx(result["import_rows_per_s"] / result["clip_image_per_s"])
    assert result["import_over_both_models"] == pytest.approx(
        result["import_rows_per_s"] / result["both_models_per_s"])


def test_import_throughput_refuses_no_rounds(tmp_path):
    with pytest.raises(ValueError, match="rounds"):
        asyncio.run(measure("localhost:1", rows=4, batch_size=4, workdir=tmp_path, rounds=0))
