"""Every route of tarn-authz's OpenAPI, fuzzed by schemathesis against a real server:
no input may produce a 5xx."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.authz.support import GATEWAY, start_authz, write_policy_dir  # noqa: F401

pytestmark = pytest.mark.integration
schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1


@pytest.fixture
def authz_schema(tmp_path, start_authz):  # noqa: F811
    write_policy_dir(tmp_path / "policies")
    server = start_authz()
    return schemathesis.from_uri(f"{server.url}/openapi.json", base_url=server.url)


schema = schemathesis.from_pytest_fixture("authz_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    for headers in (GATEWAY, {**GATEWAY, "X-TARN-User": "alice", "X-TARN-Groups": "ml"}, {}):
        response = case.call(headers=headers, timeout=10)
        case.validate_response(response, checks=(not_a_server_error,))
