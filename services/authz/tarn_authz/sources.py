"""Where a Ranger service's policies, roles and user store come from: Ranger Admin's
download endpoints, or a local folder; and the on-disk copy of the last good download.

File names follow Ranger's plugin policy cache (``<appId>_<service>.json``,
``..._roles.json``, ``..._userstore.json``); the local folder drops the app id:
``<service>.json`` (ServicePolicies), ``<service>_roles.json`` (RangerRoles) and
``<service>_userstore.json`` (RangerUserStore), the last two optional.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from .ranger.models import RangerRoles, RangerUserStore, ServicePolicies
from .ranger_admin import MalformedPolicies, RangerAdminClient, ServiceNotFound, parse


@dataclass(frozen=True)
class PolicyBundle:
    """Everything one Ranger service's decisions depend on."""
    policies: ServicePolicies
    roles: Optional[RangerRoles] = None
    user_store: Optional[RangerUserStore] = None
    origin: str = "folder"  # folder | ranger | cache

    @property
    def policy_version(self) -> int:
        return _version(self.policies.policy_version)

    @property
    def role_version(self) -> int:
        return _version(self.roles.role_version if self.roles else None)

    @property
    def user_store_version(self) -> int:
        return _version(self.user_store.user_store_version if self.user_store else None)


def _version(value: Optional[int]) -> int:
    return -1 if value is None else int(value)


class FolderSource:
    """The embedded default: files an operator (or a deployment tool) writes."""

    def __init__(self, folder: Path, service: str) -> None:
        self.folder = Path(folder)
        self.service = service
        self._seen: Optional[tuple] = None

    def _paths(self) -> tuple[Path, Path, Path]:
        base = self.folder / self.service
        return base.with_name(f"{self.service}.json"), base.with_name(f"{self.service}_roles.json"), \
            base.with_name(f"{self.service}_userstore.json")

    def _stamp(self) -> tuple:
        stamp = []
        for path in self._paths():
            try:
                st = path.stat()
                stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    async def fetch(self, current: Optional[PolicyBundle]) -> Optional[PolicyBundle]:
        """The folder's bundle, or None when no file changed since the last successful read."""
        stamp = self._stamp()
        if current is not None and stamp == self._seen:
            return None
        policies_path, roles_path, users_path = self._paths()
        if stamp[0] is None:
            raise ServiceNotFound(f"no policy file {policies_path} for service {self.service!r}")
        bundle = PolicyBundle(
            policies=parse(ServicePolicies, policies_path.read_bytes(), str(policies_path)),
            roles=parse(RangerRoles, roles_path.read_bytes(), str(roles_path)) if stamp[1] else None,
            user_store=parse(RangerUserStore, users_path.read_bytes(), str(users_path)) if stamp[2] else None,
            origin="folder")
        self._seen = stamp
        return bundle

    def accepted(self, now_ms: int) -> None:
        """Nothing to do: the stamp is taken when a read parses."""


class RangerSource:
    """Conditional downloads; unchanged parts are carried over from the current bundle."""

    def __init__(self, client: RangerAdminClient) -> None:
        self.client = client
        self.service = client.service
        self.last_activation_ms = 0

    async def fetch(self, current: Optional[PolicyBundle]) -> Optional[PolicyBundle]:
        known = current if current is not None and current.origin == "ranger" else None
        policies = await self.client.policies(known.policy_version if known else -1, self.last_activation_ms)
        roles = await self.client.roles(known.role_version if known else -1, self.last_activation_ms)
        users = await self.client.user_store(known.user_store_version if known else -1, self.last_activation_ms)
        if policies is None and roles is None and users is None:
            return None
        if policies is None and known is None:
            raise MalformedPolicies(f"Ranger Admin sent no policies for {self.service!r} on a first download")
        base = known or PolicyBundle(policies=policies, origin="ranger")  # type: ignore[arg-type]
        return replace(base, policies=policies or base.policies, roles=roles or base.roles,
                       user_store=users or base.user_store, origin="ranger")

    def accepted(self, now_ms: int) -> None:
        self.last_activation_ms = now_ms


class DiskCache:
    """The last good download of each service, written atomically."""

    def __init__(self, folder: Path, app_id: str) -> None:
        self.folder = Path(folder)
        self.app_id = app_id

    def _paths(self, service: str) -> tuple[Path, Path, Path]:
        stem = f"{self.app_id}_{service}"
        return (self.folder / f"{stem}.json", self.folder / f"{stem}_roles.json",
                self.folder / f"{stem}_userstore.json")

    def save(self, service: str, bundle: PolicyBundle) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        policies_path, roles_path, users_path = self._paths(service)
        for path, model in ((policies_path, bundle.policies), (roles_path, bundle.roles),
                            (users_path, bundle.user_store)):
            if model is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomically(path, model.model_dump_json(by_alias=True, exclude_none=True))

    def saved_at(self, service: str) -> Optional[float]:
        """When the service's download was written (None: there is none)."""
        try:
            return self._paths(service)[0].stat().st_mtime
        except FileNotFoundError:
            return None

    def load(self, service: str) -> Optional[PolicyBundle]:
        policies_path, roles_path, users_path = self._paths(service)
        if not policies_path.exists():
            return None
        return PolicyBundle(
            policies=parse(ServicePolicies, policies_path.read_bytes(), str(policies_path)),
            roles=parse(RangerRoles, roles_path.read_bytes(), str(roles_path)) if roles_path.exists() else None,
            user_store=parse(RangerUserStore, users_path.read_bytes(), str(users_path))
            if users_path.exists() else None,
            origin="cache")


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
