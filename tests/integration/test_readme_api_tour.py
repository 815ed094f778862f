"""The README's curl block runs as written (ports aside) against a real orchestrator + tritonserver (tiny models)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, ADMIN_TOKEN, running_orchestrator, wait_for_import

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def api_tour_block() -> str:
    """The fenced bash block that follows the `api-tour` marker comment in the README."""
    match = re.search(r"<!-- api-tour[^>]*-->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert match, "README lost its api-tour block"
    return match.group(1)


def test_readme_api_tour_runs_as_written(triton_server, tmp_path):
    catalog_csv = generate_catalog(tmp_path / "runs" / "demo_catalog", count=40, seed=0)
    assert (catalog_csv.parent / "images" / "SF-000003.jpg").exists(), "the tour uploads this photo"
    with running_orchestrator(triton_server.grpc_url, tmp_path / "runs", catalog_csv.parent) as running:
        base = running.base
        with httpx.Client(headers=ADMIN, base_url=base, timeout=60) as client:  # what `make demo` does before the tour
            started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", catalog_csv.read_bytes())},
                                  data={"base_dir": str(catalog_csv.parent)})
            assert wait_for_import(client, started.json()["job_id"])["status"] == "succeeded"
        script = api_tour_block().replace("http://localhost:8080", base).replace("localhost:8080", base)
        # the reader exported the token `snapfit up` printed, as the block's comment says
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   SNAPFIT_ADMIN_TOKEN=ADMIN_TOKEN)
        run = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert '"error"' not in out, out
    assert out.count('"results":[{') == 3, out  # text, photo, garment + text: each found products
    assert '{"product_id":"SF-000003"' in out
    assert '"price":39000.0' in out  # the admin PATCH
    assert "import succeeded: 0 inserted, 0 updated, 40 unchanged, 0 failed" in run.stderr  # rich console
    assert '"status":"ok"' in out and "snapfit_http_request_duration_seconds" in out
