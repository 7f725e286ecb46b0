"""The agent's own HTTP port (picked at start) travels in its announcements, so tarn-am's
Prometheus service discovery can list the agent's /metrics."""
from __future__ import annotations

import asyncio
import sys
import urllib.request

from tarn_node_agent.agent import NodeAgent
from tarn_node_agent.settings import load_settings

CID = "container_e17_1410901177871_0001_01_000005"


def test_the_port_the_agent_endpoint_got_is_announced_with_the_instance():
    settings = load_settings(["--model-repository", "hdfs://nn:8020/models", "--container-id", CID,
                              "--tritonserver", sys.executable, "--agent-host", "127.0.0.1", "--agent-port", "0",
                              "--advertise-host", "127.0.0.1"])
    agent = NodeAgent(settings, environ={})
    assert agent.lifecycle.heartbeat().endpoints.agent_port is None  # not listening yet

    async def start_and_scrape():
        server, task = await agent._start_http()
        try:
            ready = agent.lifecycle.ready(["m"])
            url = f"http://{ready.endpoints.host}:{ready.endpoints.agent_port}/metrics"
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            text = await asyncio.to_thread(lambda: opener.open(url, timeout=5).read().decode())
            return ready, agent.lifecycle.heartbeat(), text
        finally:
            server.should_exit = True
            await asyncio.wait([task], timeout=5)

    ready, heartbeat, metrics = asyncio.run(start_and_scrape())
    assert ready.endpoints.agent_port == agent.agent_port == heartbeat.endpoints.agent_port
    assert ready.endpoints.http_port == settings.http_port  # the other endpoints are kept
    assert "tarn_node_agent_triton_up" in metrics
