"""benchmarks.import_throughput measures every rate on the tiny models (no timing assertions)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.import_throughput import measure

pytestmark = pytest.mark.integration


def test_import_throughput_reports_every_rate(triton_server, tmp_path):
    result = asyncio.run(measure(triton_server.grpc_url, rows=12, batch_size=4, workdir=tmp_path))
    for key in ("clip_image_per_s", "classifier_per_s", "both_models_per_s", "import_rows_per_s"):
        assert result[key] > 0, key
    assert result["import_over_clip"] == pytest.approx(result["import_rows_per_s"] / result["clip_image_per_s"])
    assert result["import_over_both_models"] == pytest.approx(
        result["import_rows_per_s"] / result["both_models_per_s"])
