"""Per-model placement wired into tarn-am, end to end on the minicluster (issue 16): the real
tarn-am places the models file's copies on the real node-agents (Triton in explicit model
control) with load commands, /api/state and `tarn status` say what it decided, and when an
operator raises a model's copies wanted past what one instance can hold (one copy of a model
per instance), placement asks for a second instance and the model is loaded and served there;
a SIGKILLed tarn-am comes back with that count (`tarn models --json` shows both copies). The
policy is on (no --no-autoscale): in per-model mode placement moves the count."""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Dict

import httpx
import pytest

from tests.am.conftest import holders, submitted
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
MODELS = "models:\n  identity: {min: 1, max: 2, memory: 64MiB}\n  add_sub: {min: 1, max: 2, memory: 64MiB}\n"
IDENTITY = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}


@pytest.fixture(scope="module")
def per_model(hadoop_cluster, webhdfs, stack, tmp_path_factory):
    path = tmp_path_factory.mktemp("placement") / "models.yaml"
    path.write_text(MODELS)
    yield from submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=2, autoscale=True,
                         extra_args=["--placement", "per-model", "--models", str(path)])


def lines(state: dict) -> Dict[str, dict]:
    return {m["name"]: m for m in state["model_placement"]}


def am_log(deployment) -> str:
    """tarn-am's lines about models, for a failure's message."""
    text = deployment.tarn("logs", "--name", deployment.name, check=False).stdout
    return "\n".join(line for line in text.splitlines() if "model" in line)[-6000:]


def served(state: dict, instance_id: str) -> None:
    row = next(r for r in state["instances"] if r["instance_id"] == instance_id)
    response = httpx.post(f"http://{row['address']}/v2/models/identity/infer", json=IDENTITY, timeout=10,
                          trust_env=False)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0, 2.0]


def test_tarn_am_places_each_model_as_the_file_says_and_a_second_copy_wanted_brings_a_second_instance(per_model):
    deployment = per_model
    started = time.monotonic()

    def placed():
        state = deployment.state()
        held = holders(state)
        want = lines(state)
        ok = (state["placement"] == "per-model" and len(state["instances"]) == 1
              and all(len(held.get(m, [])) == 1 and want[m]["missing"] == 0 and not want[m]["loading"]
                      for m in ("identity", "add_sub")))
        return state if ok else None

    state = wait_for(placed, 240, message=lambda: f"models not placed: {deployment.state()['model_placement']}")
    placed_s = time.monotonic() - started
    want = lines(state)
    assert {m: (want[m]["wanted"], len(want[m]["held"])) for m in want} == {"identity": (1, 1), "add_sub": (1, 1)}, \
        (state["model_placement"], holders(state), am_log(deployment))
    assert want["identity"]["footprint_bytes"] > 0
    first = holders(state)["identity"][0]
    assert holders(state)["add_sub"] == [first] and state["desired"] == 1
    served(state, first)
    status = deployment.tarn("status", "--name", deployment.name).stdout
    assert f"model identity: 1/1 copies on {first}" in status, status

    with deployment.http() as http:
        answer = http.post("/model-copies", json={"model": "identity", "copies": 2})
        assert answer.status_code == 200, answer.text
        refused = http.post("/model-copies", json={"model": "identity", "copies": 3})
        assert refused.status_code == 422 and "within 1..2" in refused.text
    grown = time.monotonic()

    def second_copy():
        state = deployment.state()
        held = holders(state)
        return state if len(held.get("identity", [])) == 2 and lines(state)["identity"]["missing"] == 0 else None

    state = wait_for(second_copy, 240, message=lambda: f"no second copy: {deployment.state()['model_placement']}\n"
                                                       f"{am_log(deployment)}")
    second = next(i for i in holders(state)["identity"] if i != first)
    served(state, second)
    assert holders(state)["add_sub"] == [first]  # still one copy, where it was
    assert state["desired"] == 2 and any(d["source"] == "placement" and d["target"] == 2 for d in state["decisions"])
    print(f"placed in {placed_s:.1f} s after submit; second instance serving the second copy "
          f"{time.monotonic() - grown:.1f} s after copies wanted grew")

    # A SIGKILLed tarn-am comes back with the operator's two copies (skein's key-value store), so
    # its first round unloads nothing; `tarn models --json` (GET /api/models) shows both copies.
    with deployment.http() as http:
        pid = http.get("/healthz").json()["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    answering = []

    def restarted_with_both_copies():
        with deployment.http() as http:
            if http.get("/healthz").json()["pid"] == pid:
                return None
            answering.append(time.monotonic())
            rows = {m["name"]: m for m in http.get("/api/models").raise_for_status().json()["models"]}
        return rows if rows and rows["identity"]["loaded"] == 2 else None

    wait_for(restarted_with_both_copies, 120, "the restarted tarn-am with both copies", interval_s=0.5,
             ignore=(httpx.HTTPError, KeyError, ValueError))
    back_s = time.monotonic() - killed
    document = json.loads(deployment.tarn("models", "--name", deployment.name, "--json").stdout)
    rows = {m["name"]: m for m in document["models"]}
    assert (rows["identity"]["wanted"], sorted(rows["identity"]["instances"])) == (2, sorted([first, second])), rows
    assert (rows["add_sub"]["wanted"], rows["add_sub"]["instances"]) == (1, [first]), rows
    assert deployment.state()["desired"] == 2 and document["app_id"] == deployment.app_id
    print(f"tarn-am SIGKILLed: API again after {answering[0] - killed:.1f} s, both copies shown after {back_s:.1f} s")
