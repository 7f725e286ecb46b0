"""`tarn submit`'s check that the deployment's HAProxy backend and ZooKeeper path are its
own: another live deployment owning either (tarn_shared.claims) is refused before YARN,
in one line naming the owner (exit 2), because the two would take each other's servers
and znodes away (gateway-sync would refuse the newcomer anyway, and route nothing for it).

Live: a deployment record (read from the Redis of --redis-url) not marked removed, whose
application YARN still runs or has queued. A record whose application YARN reports
finished, failed or killed, or does not know at all, is a leftover (the AM does not
remove its record when it ends) and owns nothing. An application YARN cannot be asked
about counts as live: the check refuses rather than guess. A resubmit of the same
--name is not a conflict. Redis unreachable: said on stderr, and the submit goes on.

A leftover on this deployment's places is marked removed (said on stderr) before the
submit: gateway-sync, which cannot ask YARN, would otherwise keep it as their owner.
"""
from __future__ import annotations

import asyncio
import sys
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from redis.exceptions import RedisError

from tarn_shared import events as ev
from tarn_shared.claims import HAPROXY, Place, first_clash, haproxy_place, live_records, zookeeper_place
from tarn_shared.deployments import read_records, remove_record
from tarn_shared.streams import REDIS_DOWN, connect

from .options import SubmitOptions
from .preflight import PreflightError

ENDED_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
GONE = "GONE"  # YARN does not know the application


def place_conflict(options: SubmitOptions, records: Mapping[str, ev.DeploymentRecord],
                   app_states: Mapping[str, str]) -> Optional[str]:
    """The line refusing ``options``, or None. ``app_states``: YARN's state of each
    record's application (GONE when unknown to YARN; missing: not asked)."""
    others = [r for name, r in live_records(records).items()
              if name != options.name and app_states.get(r.app_id) not in ENDED_STATES | {GONE}]
    clash = first_clash(_places(options), others)
    if clash is None:
        return None
    place, owner = clash
    flag = "--haproxy-backend" if place.kind == HAPROXY else "--zk-path"
    return (f"{flag}: {place.describe()} is owned by deployment {owner.deployment} ({owner.app_id}); "
            f"give --name {options.name} its own {flag}, or stop {owner.deployment} first")


def leftovers(options: SubmitOptions, records: Mapping[str, ev.DeploymentRecord],
              app_states: Mapping[str, str]) -> List[ev.DeploymentRecord]:
    """Records of ended applications on this deployment's places: marked removed before the
    submit, or gateway-sync would keep them as the places' owners (first claims) forever."""
    ended = [r for name, r in live_records(records).items()
             if name != options.name and app_states.get(r.app_id) in ENDED_STATES | {GONE}]
    mine = _places(options)
    return [r for r in ended if first_clash(mine, [r]) is not None]


def _places(options: SubmitOptions) -> Tuple[Place, Place]:
    return haproxy_place(options.haproxy_backend), zookeeper_place(options.zk_ensemble, options.zk_path)


def yarn_states(client, records: Mapping[str, ev.DeploymentRecord]) -> Dict[str, str]:
    """YARN's state of every recorded application. skein's driver answers an id the
    ResourceManager does not know ("Unknown ApplicationId") or cannot parse with
    INVALID_ARGUMENT, a ValueError here; NOT_FOUND (a KeyError) is taken the same way."""
    states = {}
    for record in records.values():
        try:
            states[record.app_id] = str(client.application_report(record.app_id).state)
        except (KeyError, ValueError):
            states[record.app_id] = GONE
        except Exception:  # YARN could not say: counts as live  # noqa: BLE001
            continue
    return states


def check_owners(options: SubmitOptions, client,
                 warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> None:
    """Raises PreflightError when a live deployment owns this one's backend or path."""
    try:
        records = asyncio.run(_read(options.redis_url))
    except REDIS_DOWN + (RedisError,) as exc:
        warn(f"tarn submit: not checked before submitting: who owns --haproxy-backend and --zk-path "
             f"(Redis at {options.redis_url}: {exc})")
        return
    others = {n: r for n, r in live_records(records).items() if n != options.name}
    states = yarn_states(client, others) if client is not None else {}
    verdict = place_conflict(options, records, states)
    if verdict:
        raise PreflightError(verdict)
    stale = leftovers(options, records, states)
    if stale:
        try:
            asyncio.run(_remove(options.redis_url, stale))
        except REDIS_DOWN + (RedisError,) as exc:
            warn(f"tarn submit: could not release the records of ended deployments "
                 f"{', '.join(r.deployment for r in stale)} (Redis at {options.redis_url}: {exc})")
            return
        for record in stale:
            warn(f"tarn submit: released the record of deployment {record.deployment} ({record.app_id}, "
                 f"{states[record.app_id].lower()} in YARN) that still claimed this deployment's places")


async def _read(redis_url: str) -> Dict[str, ev.DeploymentRecord]:
    client = connect(redis_url, socket_timeout_s=5.0)
    try:
        return dict(await read_records(client))
    finally:
        await client.aclose()


async def _remove(redis_url: str, records: List[ev.DeploymentRecord]) -> None:
    client = connect(redis_url, socket_timeout_s=5.0)
    try:
        for record in records:
            await remove_record(client, record)
    finally:
        await client.aclose()
