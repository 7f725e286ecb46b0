#!/usr/bin/env python3
"""Writes the payloads the Ranger replay server serves, with Ranger's own Java classes.

Ranger Admin cannot run on these machines, so the download client is tested against a
replay server (tests/authz/replay/server.py). What it replays must be what Ranger Admin
sends: this script hands each version's ServicePolicies, RangerRoles and RangerUserStore
to the oracle's `write-payloads` mode (tests/authz/oracle: Apache Ranger's
ranger-plugins-common), which deserializes them into Ranger's classes and serializes them
back with Ranger's JsonUtils, exactly as ServiceREST does. The output is committed under
payloads/; run this again after changing the suites below:

    .venv/bin/python -m tests.authz.replay.make_payloads
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.authz.oracle import client as oracle

HERE = Path(__file__).resolve().parent
PAYLOADS = HERE / "payloads"
REPO = HERE.parents[2]
SERVICE = "triton_prod"


def _item(users=(), groups=(), roles=(), accesses=("infer",)):
    return {"users": list(users), "groups": list(groups), "roles": list(roles),
            "accesses": [{"type": a, "isAllowed": True} for a in accesses], "delegateAdmin": False}


def _policy(pid, models, allow=(), deny=(), name=None):
    return {"id": pid, "guid": f"guid-{pid}", "name": name or f"policy-{pid}", "service": SERVICE,
            "isEnabled": True, "isAuditEnabled": True, "policyType": 0, "policyPriority": 0, "version": 1,
            "resources": {"model": {"values": list(models), "isExcludes": False, "isRecursive": False}},
            "policyItems": list(allow), "denyPolicyItems": list(deny), "allowExceptions": [], "denyExceptions": []}


def suites() -> dict[str, dict]:
    servicedef = json.loads((REPO / "deploy" / "ranger" / "triton-servicedef.json").read_text())
    servicedef["id"] = 1001
    base = [
        _policy(1, ["llama-*"], allow=[_item(groups=["ml"])], name="ml infers llama"),
        _policy(2, ["*"], allow=[_item(users=["alice"], accesses=["list"])], name="alice lists all"),
        _policy(3, ["llama-secret"], deny=[_item(users=["bob"], groups=["ml"])], name="no llama-secret for ml"),
        _policy(4, ["*"], allow=[_item(roles=["auditors"], accesses=["metadata", "list"])], name="auditors"),
    ]
    roles = {"serviceName": SERVICE, "roleVersion": 2, "rangerRoles": [
        {"id": 1, "name": "auditors", "isEnabled": True, "users": [{"name": "carol", "isAdmin": False}],
         "groups": [], "roles": []}]}
    users = {"userStoreVersion": 5, "userGroupMapping": {"alice": ["ml"], "dave": ["ml"], "erin": ["ops"]}}
    v1 = {"policies": {"serviceName": SERVICE, "serviceId": 7, "policyVersion": 7, "serviceDef": servicedef,
                       "policies": base}, "roles": roles, "userStore": users}
    v2_policies = base + [_policy(5, ["mistral-7b"], allow=[_item(users=["erin"])], name="erin infers mistral")]
    v2_roles = dict(roles, roleVersion=3, rangerRoles=roles["rangerRoles"] + [
        {"id": 2, "name": "ops-readers", "isEnabled": True, "users": [], "groups": [{"name": "ops", "isAdmin": False}],
         "roles": []}])
    v2 = {"policies": dict(v1["policies"], policyVersion=8, policies=v2_policies), "roles": v2_roles,
          "userStore": dict(users, userStoreVersion=6, userGroupMapping=dict(users["userGroupMapping"], frank=["ml"]))}
    # v3: erin's access revoked, and a policy with a custom condition this evaluator cannot reproduce: refused
    conditioned_def = dict(servicedef, policyConditions=[
        {"itemId": 1, "name": "ip-range", "evaluator": "org.apache.ranger.plugin.conditionevaluator.RangerIpMatcher"}])
    conditioned = dict(_policy(6, ["bert-*"], allow=[dict(_item(groups=["ops"]), conditions=[
        {"type": "ip-range", "values": ["10.0.0.0/8"]}])], name="ops infer bert from the office"))
    v3 = dict(v2, policies=dict(v2["policies"], policyVersion=9, serviceDef=conditioned_def,
                                policies=base + [conditioned]))
    # v4: the condition removed again: the revocation takes effect
    v4 = dict(v2, policies=dict(v2["policies"], policyVersion=10, policies=base))
    # v5: a linked tag service with a tag-based deny: refused (tag policies are not evaluated)
    tag_deny = {"id": 100, "name": "no PII", "service": "triton_tags", "isEnabled": True, "policyType": 0,
                "resources": {"tag": {"values": ["PII"], "isExcludes": False, "isRecursive": False}},
                "denyPolicyItems": [_item(groups=["public"])]}
    v5 = dict(v4, policies=dict(v4["policies"], policyVersion=11, tagPolicies={
        "serviceName": "triton_tags", "serviceId": 8, "policyVersion": 3, "policies": [tag_deny],
        "serviceDef": {"name": "tag", "resources": [{"itemId": 1, "name": "tag", "level": 1}]}}))
    return {"v1": v1, "v2": v2, "v3-refused-condition": v3, "v4": v4, "v5-refused-tags": v5}


def main() -> None:
    oracle.build()
    target = PAYLOADS / SERVICE
    shutil.rmtree(target, ignore_errors=True)
    for name, suite in suites().items():
        oracle.write_payloads(suite, target / name)
        print(f"wrote {target / name}: {sorted(p.name for p in (target / name).iterdir())}")


if __name__ == "__main__":
    main()
