"""Which Ranger roles a user holds, from Ranger's RangerRoles download (RangerRolesUtil):
roles granted to the user, to any of the user's groups, to the group `public`, and through
roles that contain other roles."""
from __future__ import annotations

from collections.abc import Iterable

from .models import RangerRoles

GROUP_PUBLIC = "public"


class RoleResolver:
    __slots__ = ("_by_user", "_by_group", "version")

    def __init__(self, roles: RangerRoles | None):
        self._by_user: dict[str, frozenset[str]] = {}
        self._by_group: dict[str, frozenset[str]] = {}
        self.version = roles.role_version if roles and roles.role_version is not None else -1
        if roles is None:
            return
        by_name = {}
        for role in roles.ranger_roles:
            by_name.setdefault(role.name, role)
        by_user: dict[str, set[str]] = {}
        by_group: dict[str, set[str]] = {}
        for role in roles.ranger_roles:
            # a member of a contained role holds the containing role too
            contained = [role]
            seen = {role.name}
            stack = [role]
            while stack:
                current = stack.pop()
                for member in current.roles:
                    inner = by_name.get(member.name)
                    if inner is not None and inner.name not in seen:
                        seen.add(inner.name)
                        contained.append(inner)
                        stack.append(inner)
            for holder in contained:
                for member in holder.users:
                    if member.name:
                        by_user.setdefault(member.name, set()).add(role.name)
                for member in holder.groups:
                    if member.name:
                        by_group.setdefault(member.name, set()).add(role.name)
        self._by_user = {k: frozenset(v) for k, v in by_user.items()}
        self._by_group = {k: frozenset(v) for k, v in by_group.items()}

    def roles_for(self, user: str | None, groups: Iterable[str]) -> frozenset[str]:
        if not self._by_user and not self._by_group:
            return frozenset()
        found: set[str] = set()
        if user:
            found.update(self._by_user.get(user, ()))
        if self._by_group:
            for group in groups:
                found.update(self._by_group.get(group, ()))
            found.update(self._by_group.get(GROUP_PUBLIC, ()))
        return frozenset(found)
