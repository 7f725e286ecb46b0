"""Triton's generate extension (`/v2/models/{m}[/versions/{v}]/generate` and `generate_stream`, what
vLLM and TensorRT-LLM deployments serve) is authorized as `infer` on m by both enforcement points:
through the real HAProxy (tarn_authz.lua) and the real Knox (TarnAuthz) to a real tritonserver,
alice (infer on the LLM models) gets Triton's answer, bob (no right on them) gets 403."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
GATEWAYS = ("haproxy", "knox")
PROMPT = json.dumps({"text_input": "hello big world"}).encode()


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_generate_is_authorized_as_infer_on_the_model(gateways, gateway):
    for path in ("/v2/models/text_echo/generate", "/v2/models/text_echo/versions/1/generate"):
        answer = gateways.through(gateway, "alice", "POST", path, PROMPT)
        assert answer.status == 200, (path, answer)
        assert b'"text_output":"echo: hello big world"' in answer.body, answer.body
        assert gateways.through(gateway, "bob", "POST", path, PROMPT).status == 403, path


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_generate_stream_is_authorized_as_infer_and_streams_every_event(gateways, gateway):
    path = "/v2/models/text_stream/generate_stream"
    answer = gateways.through(gateway, "alice", "POST", path, PROMPT)
    assert answer.status == 200, answer
    events = [line for line in answer.body.split(b"\n") if line.startswith(b"data: ")]
    words = [json.loads(event[len(b"data: "):])["text_output"] for event in events]
    assert words == ["hello", "big", "world"], answer.body  # one server-sent event per decoupled response
    denied = gateways.through(gateway, "bob", "POST", path, PROMPT)
    assert denied.status == 403 and b"data:" not in denied.body, denied


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_other_endpoints_under_an_llm_model_stay_denied(gateways, gateway):
    # infer on a model opens infer, generate and generate_stream, not its statistics or trace.
    for path in ("/v2/models/text_echo/stats", "/v2/models/text_echo/trace/setting", "/v2/models/text_echo/generate_x"):
        assert gateways.through(gateway, "alice", "POST", path, PROMPT).status == 403, path
