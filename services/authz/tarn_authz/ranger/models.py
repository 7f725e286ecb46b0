"""Ranger's own JSON formats (ServicePolicies, RangerServiceDef, RangerRoles, RangerUserStore)
as pydantic models, unchanged: field names are Ranger's camelCase on the wire; and the error
for what in them this evaluator cannot reproduce."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

POLICY_TYPE_ACCESS = 0
POLICY_PRIORITY_NORMAL = 0
POLICY_PRIORITY_OVERRIDE = 1


class UnsupportedPolicyFeature(ValueError):
    """A policy or service definition uses something this evaluator cannot reproduce exactly."""


class RangerModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _options_as_strings(value: Any) -> dict[str, str]:
    # Ranger keeps options as Map<String,String>; JSON files often write booleans.
    if not value:
        return {}
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items() if v is not None}


class RangerResourceDef(RangerModel):
    name: str
    level: int = 0
    parent: str | None = None
    mandatory: bool = False
    is_valid_leaf: bool | None = None
    matcher: str | None = None
    matcher_options: dict[str, str] = Field(default_factory=dict)
    label: str | None = None
    description: str | None = None
    lookup_supported: bool = False
    recursive_supported: bool = False
    excludes_supported: bool = True
    access_type_restrictions: list[str] = Field(default_factory=list)

    _coerce_options = field_validator("matcher_options", mode="before")(_options_as_strings)


class RangerAccessTypeDef(RangerModel):
    name: str
    label: str | None = None
    implied_grants: list[str] = Field(default_factory=list)


class RangerPolicyConditionDef(RangerModel):
    name: str
    evaluator: str | None = None


class RangerServiceDef(RangerModel):
    id: int | None = None
    name: str
    display_name: str | None = None
    impl_class: str | None = None
    label: str | None = None
    description: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    configs: list[dict[str, Any]] = Field(default_factory=list)
    resources: list[RangerResourceDef] = Field(default_factory=list)
    access_types: list[RangerAccessTypeDef] = Field(default_factory=list)
    policy_conditions: list[RangerPolicyConditionDef] = Field(default_factory=list)
    context_enrichers: list[dict[str, Any]] = Field(default_factory=list)

    _coerce_options = field_validator("options", mode="before")(_options_as_strings)


class RangerPolicyResource(RangerModel):
    values: list[str | None] = Field(default_factory=list)
    is_excludes: bool = False
    is_recursive: bool = False


class RangerPolicyItemAccess(RangerModel):
    type: str
    is_allowed: bool = True


class RangerPolicyItemCondition(RangerModel):
    type: str
    values: list[str] = Field(default_factory=list)


class RangerPolicyItem(RangerModel):
    accesses: list[RangerPolicyItemAccess] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    conditions: list[RangerPolicyItemCondition] = Field(default_factory=list)
    delegate_admin: bool = False


def _as_text(value: Any) -> Any:
    # Jackson reads a JSON number into a String field as its text
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class RangerRecurrenceSchedule(RangerModel):
    """Cron-like fields: comma-separated values and ranges, '*' for any; month 1-12, dayOfWeek 1 (Sunday)-7."""
    minute: str | None = None
    hour: str | None = None
    day_of_month: str | None = None
    day_of_week: str | None = None
    month: str | None = None
    year: str | None = None

    _text = field_validator("*", mode="before")(_as_text)


class RangerValidityInterval(RangerModel):
    days: int = 0
    hours: int = 0
    minutes: int = 0

    _null_is_zero = field_validator("*", mode="before")(lambda v: 0 if v is None else v)  # Jackson's int default


class RangerValidityRecurrence(RangerModel):
    schedule: RangerRecurrenceSchedule | None = None
    interval: RangerValidityInterval | None = None


class RangerValiditySchedule(RangerModel):
    start_time: str | None = None
    end_time: str | None = None
    time_zone: str | None = None
    recurrences: list[RangerValidityRecurrence | None] = Field(default_factory=list)


class RangerPolicy(RangerModel):
    id: int | None = None
    guid: str | None = None
    name: str | None = None
    service: str | None = None
    version: int | None = None
    policy_type: int | None = POLICY_TYPE_ACCESS
    policy_priority: int | None = POLICY_PRIORITY_NORMAL
    is_enabled: bool = True
    is_audit_enabled: bool = True
    is_deny_all_else: bool = False
    resources: dict[str, RangerPolicyResource] = Field(default_factory=dict)
    additional_resources: list[dict[str, RangerPolicyResource]] = Field(default_factory=list)
    policy_items: list[RangerPolicyItem] = Field(default_factory=list)
    deny_policy_items: list[RangerPolicyItem] = Field(default_factory=list)
    allow_exceptions: list[RangerPolicyItem] = Field(default_factory=list)
    deny_exceptions: list[RangerPolicyItem] = Field(default_factory=list)
    conditions: list[RangerPolicyItemCondition] = Field(default_factory=list)
    validity_schedules: list[RangerValiditySchedule] = Field(default_factory=list)
    policy_labels: list[str] = Field(default_factory=list)
    zone_name: str | None = None


class ServicePolicies(RangerModel):
    service_name: str | None = None
    service_id: int | None = None
    policy_version: int | None = None
    policy_update_time: Any = None
    policies: list[RangerPolicy] = Field(default_factory=list)
    service_def: RangerServiceDef
    audit_mode: str | None = None
    service_config: dict[str, str] = Field(default_factory=dict)
    security_zones: dict[str, Any] | None = None
    tag_policies: dict[str, Any] | None = None


class RoleMember(RangerModel):
    name: str
    is_admin: bool = False


class RangerRole(RangerModel):
    id: int | None = None
    name: str
    description: str | None = None
    users: list[RoleMember] = Field(default_factory=list)
    groups: list[RoleMember] = Field(default_factory=list)
    roles: list[RoleMember] = Field(default_factory=list)


class RangerRoles(RangerModel):
    service_name: str | None = None
    role_version: int | None = None
    role_update_time: Any = None
    ranger_roles: list[RangerRole] = Field(default_factory=list)


class RangerUserStore(RangerModel):
    user_store_version: int | None = None
    user_store_update_time: Any = None
    user_attr_mapping: dict[str, dict[str, str]] = Field(default_factory=dict)
    group_attr_mapping: dict[str, dict[str, str]] = Field(default_factory=dict)
    user_group_mapping: dict[str, list[str]] = Field(default_factory=dict)

    def groups_of(self, user: str) -> frozenset[str]:
        return frozenset(self.user_group_mapping.get(user, ()))
