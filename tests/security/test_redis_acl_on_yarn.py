"""A deployment on the YARN minicluster whose tarn-am (and `tarn submit`) and node-agents use
their own Redis 7 ACL users (deploy/redis/am.conf, node-agent.conf): submitted, served,
reported and stopped with nothing denied to either, and neither can write what the other,
or another deployment, owns."""
from __future__ import annotations

import dataclasses

import httpx
import pytest
import redis
from redis import exceptions as redis_errors

from tarn_shared import events as ev
from tests.am.conftest import submitted
from tests.security.redis_acl import AM_DEPLOYMENT, denied_to
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop]


def test_tarn_am_and_its_agents_submit_serve_and_stop_with_their_own_acl_users_denied_nothing(
        hadoop_cluster, webhdfs, stack, acl_redis):
    admin = redis.Redis.from_url(acl_redis["admin"])
    admin.acl_log_reset()
    deployment = submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=1,
                           agent_env={"TARN_NODE_AGENT_REDIS_URL": acl_redis["am-agent"]},
                           extra_args=["--name", AM_DEPLOYMENT, "--redis-url", acl_redis["am"]])
    d = dataclasses.replace(next(deployment), name=AM_DEPLOYMENT)
    try:
        wait_for(lambda: d.state()["ready"] == 1, 300, "one ready instance", ignore=(httpx.HTTPError, KeyError))
        wait_for(lambda: admin.xlen(ev.telemetry_stream(AM_DEPLOYMENT)) > 0, 60, "the agent's telemetry")
        assert admin.hget(ev.deployments_key(), AM_DEPLOYMENT) is not None
        stopped = d.tarn("stop", "--name", AM_DEPLOYMENT, "--timeout", "120")
        assert f"{d.app_id} stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        assert admin.hget(ev.deployments_key(), AM_DEPLOYMENT) is None
        acks = [ev.decode(f) for _, f in admin.xrange(ev.acks_stream(AM_DEPLOYMENT))]
        assert any(a.command_type == "command.drain" and a.status == ev.AckStatus.DONE for a in acks), acks
        assert denied_to(admin, "am") == [] and denied_to(admin, "am-agent") == []
    finally:
        deployment.close()  # kills the application if it still runs
        admin.close()

    am = redis.Redis.from_url(acl_redis["am"])
    agent = redis.Redis.from_url(acl_redis["am-agent"])
    try:
        for attempt in (lambda: am.xadd(ev.lifecycle_stream("other"), {"event": "{}"}),
                        lambda: am.xadd(ev.commands_stream("other", "container_1"), {"event": "{}"}),
                        lambda: am.hset(ev.gateway_places_key("g"), "p", "x"),
                        lambda: am.xadd(ev.audit_stream(), {"event": "{}"}),
                        lambda: am.flushall(),
                        lambda: am.config_get("*"),
                        lambda: agent.xadd(ev.commands_stream(AM_DEPLOYMENT, "container_1"), {"event": "{}"}),
                        lambda: agent.set(f"tarn:{AM_DEPLOYMENT}:desired", "x 9")):
            with pytest.raises(redis_errors.NoPermissionError):
                attempt()
    finally:
        am.close()
        agent.close()
