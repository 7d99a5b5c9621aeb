"""API fuzzing from the OpenAPI document: schemathesis generates requests for every operation of
/api/v1/openapi.json (path and query parameters, bodies, in and out of their schemas) and sends
them to the app with a user token and an ops token. No request may get a 5xx, and every error must
be the documented JSON error shape.

Bounded for CI: FUZZ_EXAMPLES examples per operation (default 25, derandomized so a failure
reproduces). `bench/bench_fuzz.py` runs the same test with many more.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (schemathesis brings hypothesis)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, seeded):
    for who in ("alice", "ops"):
        headers = dict(case.headers or {})
        headers["Authorization"] = f"Bearer {seeded.tokens[who]}"
        response = case.call(headers=headers)
        assert response.status_code < 500, (who, case.method, case.formatted_path, case.query, case.body,
                                             response.status_code, response.text[:300])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["status"] == response.status_code and error["message"], response.text[:300]
