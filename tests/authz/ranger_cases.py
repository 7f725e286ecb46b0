"""Builders for Ranger-format policies, roles and requests used by the evaluator tests."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from tarn_authz.ranger import AccessRequest, PolicyEngine, RangerRoles, ServicePolicies

REPO = Path(__file__).resolve().parents[2]
TRITON_SERVICEDEF = json.loads((REPO / "deploy" / "ranger" / "triton-servicedef.json").read_text())
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def item(users=(), groups=(), roles=(), accesses=("infer",), allowed=True) -> dict:
    return {"users": list(users), "groups": list(groups), "roles": list(roles),
            "accesses": [{"type": a, "isAllowed": allowed} for a in accesses]}


def policy(pid: int, models=("*",), *, allow=(), deny=(), allow_exceptions=(), deny_exceptions=(),
           priority=0, excludes=False, deny_all_else=False, enabled=True, audit=True, name=None,
           schedules=(), resource="model", **extra) -> dict:
    body = {
        "id": pid, "name": name or f"policy-{pid}", "isEnabled": enabled, "isAuditEnabled": audit,
        "policyPriority": priority, "isDenyAllElse": deny_all_else,
        "resources": {resource: {"values": list(models), "isExcludes": excludes}},
        "policyItems": list(allow), "denyPolicyItems": list(deny),
        "allowExceptions": list(allow_exceptions), "denyExceptions": list(deny_exceptions),
        "validitySchedules": list(schedules),
    }
    body.update(extra)
    return body


def service_def(ignore_case: bool | None = None, **matcher_options) -> dict:
    definition = json.loads(json.dumps(TRITON_SERVICEDEF))
    options = definition["resources"][0]["matcherOptions"]
    if ignore_case is not None:
        options["ignoreCase"] = str(ignore_case).lower()
    options.update({k: str(v).lower() if isinstance(v, bool) else v for k, v in matcher_options.items()})
    return definition


def engine(*policies: dict, definition: dict | None = None, roles: list[dict] | None = None,
           audit_mode: str | None = None) -> PolicyEngine:
    payload = {"serviceName": "triton", "policyVersion": 1, "serviceDef": definition or TRITON_SERVICEDEF,
               "policies": list(policies)}
    if audit_mode:
        payload["auditMode"] = audit_mode
    ranger_roles = RangerRoles.model_validate({"roleVersion": 1, "rangerRoles": roles}) if roles is not None else None
    return PolicyEngine(ServicePolicies.model_validate(payload), ranger_roles)


def role(name: str, users=(), groups=(), roles=()) -> dict:
    return {"name": name, "users": [{"name": u} for u in users], "groups": [{"name": g} for g in groups],
            "roles": [{"name": r} for r in roles]}


def request(model: str | None, access: str, user: str | None, groups=(), scopes=None) -> AccessRequest:
    resource = {} if model is None else {"model": model}
    return AccessRequest(resource=resource, access_type=access, user=user, user_groups=frozenset(groups),
                         resource_element_matching_scopes=scopes or {})


def ask(eng: PolicyEngine, model: str | None, access: str, user: str | None, groups=(), now=NOW, scopes=None):
    return eng.evaluate(request(model, access, user, groups, scopes), now)
