"""The policy collector reads the states it is handed on every scrape, against a private
registry (as prometheus_client's own process-collector test does)."""
from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from tarn_authz.decision_metrics import PolicyCollector
from tarn_authz.registry import ServiceState
from tarn_authz.sources import FolderSource
from tests.authz.support import SERVICE, write_policy_dir


def test_the_collector_reports_what_the_served_states_hold_at_each_scrape(tmp_path):
    write_policy_dir(tmp_path)
    served: dict[str, ServiceState] = {}
    registry = CollectorRegistry()
    registry.register(PolicyCollector(lambda: served))
    state = served[SERVICE] = ServiceState(name=SERVICE, source=FolderSource(tmp_path, SERVICE))

    def sample(name: str, **labels: str):
        return registry.get_sample_value(name, {"service": SERVICE, **labels})

    assert (sample("tarn_authz_policies_loaded"), sample("tarn_authz_policies")) == (0.0, 0.0)
    assert sample("tarn_authz_policy_version", origin="folder") is None

    state.install(asyncio.run(state.source.fetch(None)))
    assert sample("tarn_authz_policies_loaded") == 1.0
    assert sample("tarn_authz_policies") == float(state.engine.policy_count) > 0
    assert [sample(f"tarn_authz_{kind}_version", origin="folder")
            for kind in ("policy", "role", "user_store")] == [7.0, 2.0, 5.0]

    served.clear()  # a dropped service disappears from the next scrape
    assert sample("tarn_authz_policies_loaded") is None
