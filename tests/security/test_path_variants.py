"""Paths decided the way Triton routes them.

Triton 2.51 (src/http_server.cc, HTTPAPIServer::Handle) routes the raw request path (query cut
off) with RE2 FullMatch on `/v2/models/([^/]+)(?:/versions/([0-9]+))?(?:/(infer|generate|...))?`:
case-sensitive, never percent-decoded, no dot-segment or slash clean-up. So `%69dentity` and
`identity;x=1` are other model names to it, and `x/../identity` is no model path at all. Both
enforcement points refuse (400, "not in canonical form") every path a hop could read another way;
what they let through, they decided on the model name Triton then serves.

Every variant below is sent as raw bytes as an infer request on `identity`: straight to Triton (what
it would serve), and through the real HAProxy and the real Knox to the same tritonserver, as alice
(infer on identity) and as bob (no right on identity, but infer on `x`, `%69dentity`,
`identity;x=1`, `IDENTITY` and `identity%2Finfer`: a gateway that decided on one name while Triton
served another would let him through). Outcomes:
  200       Triton's answer from identity          403  denied (by authz, or an unmapped path)
  404, 405  Triton's own answer (the request passed) 400  the gateway's canonical-form refusal
  bad       the gateway's HTTP parser refused the request itself (400, before any decision)
"""
from __future__ import annotations

import json

import pytest

from tests.knox.support import USER_HEADER
from tests.security.gateways import raw_request

pytestmark = pytest.mark.integration
INFER = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [7.0]}]}).encode()

# variant (sent after the gateway's prefix)       Triton  HAProxy alice, bob  Knox alice, bob
TABLE = [
    ("/v2/models/identity/infer",                   "200",  "200", "403",     "200", "403"),
    ("/v2/models/identity/versions/1/infer",        "200",  "200", "403",     "200", "403"),
    ("/v2/models/identity/versions/01/infer",       "200",  "200", "403",     "200", "403"),
    ("/v2/models/identity/infer?x=1",               "200",  "200", "403",     "200", "403"),
    ("/v2/models/identity/infer?p=/../x",           "200",  "200", "403",     "200", "403"),
    ("/v2/models/%69dentity/infer",                 "404",  "400", "400",     "400", "400"),
    ("/v2/models/identity%2Finfer",                 "405",  "400", "400",     "400", "400"),
    ("/v2/models/identity%2finfer",                 "405",  "400", "400",     "400", "400"),
    ("/v2/models/x/%2e%2e/identity/infer",          "404",  "400", "400",     "400", "400"),
    ("/v2//models/identity/infer",                  "404",  "400", "400",     "400", "400"),
    ("/v2/models//identity/infer",                  "404",  "400", "400",     "400", "400"),
    ("//v2/models/identity/infer",                  "404",  "400", "400",     "400", "400"),
    ("/v2/models/x/../identity/infer",              "404",  "400", "400",     "400", "400"),
    ("/v2/models/./identity/infer",                 "404",  "400", "400",     "400", "400"),
    ("/v2/models/identity/versions/1/../infer",     "404",  "400", "400",     "400", "400"),
    ("/V2/Models/identity/infer",                   "404",  "403", "403",     "403", "403"),
    ("/v2/models/identity/INFER",                   "404",  "403", "403",     "403", "403"),
    # Names are case-sensitive in Triton and in the Ranger service definition: bob's IDENTITY is no identity.
    ("/v2/models/IDENTITY/infer",                   "404",  "403", "404",     "403", "404"),
    ("/v2/models/identity/infer/",                  "404",  "400", "400",     "400", "400"),
    ("/v2/models/identity;x=1/infer",               "404",  "400", "400",     "400", "400"),
    ("/v2/models/identity/infer;x=1",               "404",  "400", "400",     "400", "400"),
    ("/v2/models/x\\..\\identity/infer",            "404",  "400", "400",     "400", "400"),
    # Jetty drops a fragment before Knox routes it: Knox decides on, and sends, /v2/models/identity/infer.
    ("/v2/models/identity/infer#x",                 "404",  "bad", "bad",     "200", "403"),
    ("/%762/models/identity/infer",                 "404",  "400", "400",     "400", "400"),
    ("/v2/models/identit\u00e9/infer",              "404",  "bad", "bad",     "400", "400"),
    ("/v2/models/identity/versions/latest/infer",   "404",  "403", "403",     "403", "403"),
    ("/v2/models/stats/infer",                      "404",  "403", "403",     "403", "403"),
]


def _outcome(answer) -> str:
    if answer.status == 400 and b"canonical form" in answer.body:
        return "400"
    if answer.status == 400:
        return "bad"
    if answer.status == 200 and b'"model_name":"identity"' not in answer.body:
        return f"200 not from identity: {answer.body[:120]!r}"
    return str(answer.status)


@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_each_path_variant_has_the_outcome_in_the_table(gateways, row):
    path, triton, haproxy_alice, haproxy_bob, knox_alice, knox_bob = row
    actual = (
        _outcome(gateways.direct("POST", path, INFER)),
        _outcome(gateways.haproxy("alice", "POST", path, INFER)),
        _outcome(gateways.haproxy("bob", "POST", path, INFER)),
        _outcome(gateways.knox("alice", "POST", path, INFER)),
        _outcome(gateways.knox("bob", "POST", path, INFER)),
    )
    assert actual == (triton, haproxy_alice, haproxy_bob, knox_alice, knox_bob), f"{path}: got {actual}"


def test_no_variant_gives_bob_what_triton_serves_as_identity(gateways):
    # The property the table must keep, checked apart from the exact codes: whatever bob sends,
    # identity never answers him through either gateway.
    for path, *_ in TABLE:
        for gateway in ("haproxy", "knox"):
            answer = gateways.through(gateway, "bob", "POST", path, INFER)
            assert not (answer.status == 200 and b'"model_name":"identity"' in answer.body), (gateway, path)


def test_an_absolute_form_target_is_decided_on_its_path_through_haproxy(gateways):
    # HTTP/1.1 allows `POST http://host/path`; Triton routes its path, and so does the Lua action.
    # (Knox's prefix makes the form moot there: its context path must match first.)
    origin = "http://127.0.0.1"
    assert _outcome(gateways.direct("POST", origin + "/v2/models/identity/infer", INFER)) == "200"
    assert _outcome(gateways.haproxy("alice", "POST", origin + "/v2/models/identity/infer", INFER)) == "200"
    assert _outcome(gateways.haproxy("bob", "POST", origin + "/v2/models/identity/infer", INFER)) == "403"
    assert _outcome(gateways.haproxy("bob", "POST", origin + "/v2/models/x/../identity/infer", INFER)) == "400"


# Knox's own prefix, bent: the filter takes the path after the topology and `/triton` only when
# the raw URI starts with them literally; Jetty and Knox answer 404 where no context or route matches.
KNOX_PREFIX_VARIANTS = [
    ("/gateway/tarn/triton/../triton/v2/models/identity/infer", 400),  # canonical-form refusal
    ("/gateway/tarn/./triton/v2/models/identity/infer", 403),          # not under /triton: denied
    ("/gateway//tarn/triton/v2/models/identity/infer", 404),           # Jetty: no such context
    ("/gateway/tarn/triton%2Fv2/models/identity/infer", 403),
    ("/gateway/tarn/Triton/v2/models/identity/infer", 404),            # Knox: no such route
    ("/gateway/tarn/triton;x/v2/models/identity/infer", 403),
]


def test_variants_of_the_knox_prefix_never_reach_triton(gateways):
    for target, status in KNOX_PREFIX_VARIANTS:
        answer = raw_request(gateways.knox_port, "POST", target, {USER_HEADER: "alice", "Content-Type": "application/json"},
                             INFER)
        assert answer.status == status and b'"error"' not in answer.body, (target, answer)  # Triton's errors are JSON
