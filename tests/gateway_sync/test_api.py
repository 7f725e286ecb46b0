"""The health and metrics API: schemathesis finds no 5xx; /metrics needs the token."""
import asyncio
import time
import uuid

import httpx
import pytest
import schemathesis

from .support import Replica, settings_for

pytestmark = [pytest.mark.integration]
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def replica(stack, tmp_path_factory):
    zk_hosts = stack.env["ZK_HOSTS"]
    settings = settings_for(stack, zk_hosts, replica=f"api-{uuid.uuid4().hex[:6]}", token=TOKEN,
                            deployment="none",
                            election_path=f"/tarn-api-test-{uuid.uuid4().hex[:8]}/leader")
    process = Replica(settings, tmp_path_factory.mktemp("api") / "replica.log")
    deadline = time.monotonic() + 30
    while asyncio.run(process.health()) is None:
        assert time.monotonic() < deadline, "the replica never answered /healthz"
        time.sleep(0.1)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api_schema(replica):
    return schemathesis.from_uri(f"{replica.url}/openapi.json")


# FastAPI writes OpenAPI 3.1, which schemathesis 3.x reads only when asked to.
schemathesis.experimental.OPEN_API_3_1.enable()
schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
def test_the_api_never_answers_5xx(case):
    case.headers = {**(case.headers or {}), "X-TARN-Token": TOKEN}
    response = case.call()
    case.validate_response(response)


def test_metrics_need_the_token_and_expose_the_propagation_histogram(replica):
    assert httpx.get(f"{replica.url}/metrics").status_code == 401
    answer = httpx.get(f"{replica.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert "tarn_gateway_sync_propagation_seconds" in answer.text and "tarn_gateway_sync_leader" in answer.text


def test_healthz_says_leader_or_standby(replica):
    health = httpx.get(f"{replica.url}/healthz").json()
    assert health["role"] in ("leader", "standby") and health["replica"].startswith("api-")
