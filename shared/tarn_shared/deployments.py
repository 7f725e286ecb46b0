"""Deployment records: the AM writes one per deployment; gateway-sync and authz serve
every deployment recorded here (that is how `tarn submit` flags reach them)."""
from __future__ import annotations

import logging
from typing import Dict

import redis.asyncio as aioredis

from . import events
from .errors import SchemaError

log = logging.getLogger(__name__)


async def put_record(client: aioredis.Redis, record: events.DeploymentRecord) -> None:
    """Store the record and announce it, atomically."""
    fields = events.encode(record)
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(events.deployments_key(), record.deployment, fields[events.ENTRY_FIELD])
        pipe.xadd(events.deployments_stream(), fields, maxlen=10_000, approximate=True)
        await pipe.execute()


async def read_records(client: aioredis.Redis) -> Dict[str, events.DeploymentRecord]:
    """Every decodable record by deployment name; a bad one is logged and skipped."""
    records = {}
    for name, raw in (await client.hgetall(events.deployments_key())).items():
        name = name.decode() if isinstance(name, bytes) else name
        try:
            record = events.decode({events.ENTRY_FIELD: raw})
        except SchemaError as exc:
            log.error("skipping an undecodable deployment record", extra={"deployment": name, "error": str(exc)})
            continue
        if isinstance(record, events.DeploymentRecord):
            records[name] = record
    return records


async def remove_record(client: aioredis.Redis, record: events.DeploymentRecord) -> None:
    """Forget a deployment (after `tarn stop`); the announcement carries the last record
    with ``removed`` set so gateway-sync and authz stop serving it."""
    gone = record.model_copy(update={"removed": True})
    async with client.pipeline(transaction=True) as pipe:
        pipe.hdel(events.deployments_key(), record.deployment)
        pipe.xadd(events.deployments_stream(), events.encode(gone), maxlen=10_000, approximate=True)
        await pipe.execute()
