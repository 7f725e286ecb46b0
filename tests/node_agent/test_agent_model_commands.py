"""A real node-agent in explicit model control (--placement per-model) on the real
tritonserver and Redis, commanded as the AM would: a load is acknowledged with the model's
measured memory and load time, telemetry carries each model's state, an unload takes the
model out of both."""
from __future__ import annotations

import time

import pytest

from tarn_shared import events as ev
from tests.node_agent.agent_process import AgentProcess
from tests.support.polling import wait_for
from tests.support.triton_fixture import copy_model_repository

pytestmark = [pytest.mark.integration]
CONTAINER = "container_1700000000000_0016_01_000002"


def acked(agent: AgentProcess, command: ev.Command, timeout_s: float = 60.0) -> ev.CommandAck:
    def found():
        for _, fields in agent.redis.xrange(ev.acks_stream(agent.deployment)):
            event = ev.decode(fields)
            if isinstance(event, ev.CommandAck) and event.command_id == command.command_id:
                return event
        return None

    return wait_for(found, timeout_s, message=lambda: f"ack of {command.type}:\n{agent.log_tail()}")


def sample_after(agent: AgentProcess, after_ts: float, predicate, timeout_s: float = 30.0) -> ev.TelemetrySample:
    def found():
        for _, fields in reversed(agent.redis.xrange(ev.telemetry_stream(agent.deployment))):
            event = ev.decode(fields)
            if isinstance(event, ev.TelemetrySample) and event.ts > after_ts and predicate(event):
                return event
        return None

    return wait_for(found, timeout_s, message=lambda: f"telemetry:\n{agent.log_tail()}")


def test_the_agent_loads_on_command_reports_memory_load_time_and_state_and_still_drains_cleanly(tmp_path, redis_url, deployment):
    repository = copy_model_repository(tmp_path / "models")
    agent = AgentProcess(tmp_path / "agent", redis_url, deployment, CONTAINER, repository,
                         extra=["--model-control-mode", "explicit", "--load-models", "identity"])
    try:
        ready = agent.wait_ready()
        assert ready.models == ["identity"]  # explicit mode: only what --load-models names
        started = time.time()
        load = ev.LoadModelCommand(deployment=deployment, app_id="a", container_id=CONTAINER, model="add_sub")
        agent.command(load)
        ack = acked(agent, load)
        assert ack.status == ev.AckStatus.DONE, ack
        state = ack.model_state
        assert state.name == "add_sub" and state.state == ev.ModelLoadState.READY
        assert state.memory_source == "rss" and state.memory_bytes > 1 << 20  # a python stub process
        assert 0 < state.load_time_s < 60
        sample = sample_after(agent, started, lambda e: len(e.model_states or ()) == 2
                              and e.model_states[0].state == "ready")
        assert [(m.name, m.state, m.memory_bytes) for m in sample.model_states] == [
            ("add_sub", ev.ModelLoadState.READY, state.memory_bytes),
            ("identity", ev.ModelLoadState.READY, None)]  # loaded at start: not measured
        assert agent.wait_for(ev.InstanceReady).models == ["add_sub", "identity"]

        unload = ev.UnloadModelCommand(deployment=deployment, app_id="a", container_id=CONTAINER, model="add_sub")
        unload_sent = time.time()
        agent.command(unload)
        assert acked(agent, unload).status == ev.AckStatus.DONE
        sample_after(agent, unload_sent, lambda e: [m.name for m in e.model_states or ()] == ["identity"])

        # The model-state polling must not hold Triton's shutdown (identity still loaded) past its
        # exit timeout.
        drain = ev.DrainCommand(deployment=deployment, app_id="a", container_id=CONTAINER, timeout_s=60)
        agent.command(drain)
        draining = agent.wait_for(ev.InstanceDraining, 30, "instance.draining")
        agent.redis.xadd(ev.lifecycle_stream(deployment), ev.encode(ev.InstanceUnrouted(
            deployment=deployment, app_id=draining.app_id, instance_id=CONTAINER, seq=draining.seq,
            endpoints=draining.endpoints, open_requests=0)))
        stopped = agent.wait_for(ev.InstanceStopped, 60, "instance.stopped")
        assert stopped.exit_code == 0, (stopped.reason, agent.log_tail(80))
    finally:
        agent.stop()
