"""Every operation of the OpenAPI spec fuzzed by schemathesis against a real `snapfit serve` on a real Triton
(tiny models) with a small imported catalog: no 5xx, every answer conforms to the documented schema and status
codes, every refusal has the `{"error": {code, message}}` body. Then the stateful run follows the spec's links
(upload -> masks -> search, import -> job, try-on -> events -> result).

Bounded for `make test`: SNAPFIT_FUZZ_EXAMPLES examples per operation (default 25) and as many stateful steps.
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, running_orchestrator, wait_for_import

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("SNAPFIT_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@schemathesis.check
def error_body(ctx, response, case):
    """A 4xx/5xx answer of the API carries {"error": {"code": str, "message": str}}."""
    if response.status_code < 400 or not case.path.startswith("/v1/"):
        return None
    error = response.json().get("error") if "json" in response.headers.get("content-type", [""])[0] else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and error["message"]):
        raise AssertionError(f"{response.status_code} without the error body: {response.text[:300]}")
    return None


@pytest.fixture(scope="module")
def running_api(triton_server, tmp_path_factory):
    runs = tmp_path_factory.mktemp("fuzz")
    catalog = generate_catalog(runs / "catalog", count=12, seed=3)
    with running_orchestrator(triton_server.grpc_url, runs / "runs", catalog.parent,
                              extra_env={"SNAPFIT_TRYON__DEFAULT_STEPS": "2"}) as api:
        with httpx.Client(base_url=api.base, headers=ADMIN, timeout=120) as client:
            started = client.post("/v1/catalog/imports", files={"file": ("c.csv", catalog.read_bytes())},
                                  data={"base_dir": str(catalog.parent)})
            assert wait_for_import(client, started.json()["job_id"])["status"] == "succeeded"
        yield api.base


@pytest.fixture(scope="module")
def api_schema(running_api):
    return schemathesis.openapi.from_url(f"{running_api}/openapi.json")


def operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_every_operation_answers_as_documented(api_schema, running_api):
    """Each operation's examples, valid and invalid (schemathesis' strategies driven by Hypothesis here: its
    pytest plugin's lazy loading does not run on this pytest)."""
    failures = {}
    for operation in operations(api_schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                case.call_and_validate(base_url=running_api, headers=ADMIN, checks=CHECKS + [error_body])

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # e.g. a free-form string path parameter
            except Exception as failure:  # noqa: BLE001 - collected, so one run reports every operation
                failures[f"{operation.label} ({mode.value})"] = str(failure)[:2000]
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())


def test_the_stateful_run_follows_the_links_without_a_failure(api_schema, running_api):
    class Links(api_schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": running_api, "headers": ADMIN}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS + [error_body])

    Links.run(settings=settings(max_examples=max(EXAMPLES // 5, 2), stateful_step_count=6, deadline=None,
                                derandomize=True, suppress_health_check=list(HealthCheck)))
