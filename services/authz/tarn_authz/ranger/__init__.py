"""Ranger-exact access decisions, driven by a Ranger service definition.

Inputs are Ranger's own JSON formats (ServicePolicies, RangerRoles, RangerUserStore), parsed
by `models`; `PolicyEngine` compiles them once and answers `evaluate(request, now)` purely;
`DecisionCache` memoises answers for one engine."""
from .cache import DecisionCache
from .evaluator import AccessRequest, Decision, PolicyEngine
from .models import RangerRoles, RangerServiceDef, RangerUserStore, ServicePolicies, UnsupportedPolicyFeature

__all__ = [
    "AccessRequest", "Decision", "DecisionCache", "PolicyEngine", "RangerRoles", "RangerServiceDef",
    "RangerUserStore", "ServicePolicies", "UnsupportedPolicyFeature",
]
