"""Audit of decisions (``--ranger-audit``): Ranger's AuthzAuditEvent, to the ``tarn:audit``
stream and to a JSON-lines file in the format of Ranger's log4j audit destination.

Ranger's Log4JAuditDestination logs ``MiscUtil.stringify(event)``: the event as Gson writes
it (fields in AuthzAuditEvent's declaration order, nulls left out, ``evtTime`` as
``yyyy-MM-dd HH:mm:ss.SSS``), one event per line with the usual ``%m%n`` layout. Only
decisions the engine marks audited are recorded (Ranger's ``isAudited``).

The request path only appends to a bounded queue; a background task writes and publishes,
so neither a slow disk nor Redis or HDFS being down slows a decision. Events Redis or HDFS
did not take are kept and sent again (a bounded number; beyond it the oldest are dropped
and counted). HDFS: Ranger's layout, hdfs_audit.py."""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Deque, Dict, List, Optional

from tarn_shared.events import AuditDecision, audit_stream
from tarn_shared.streams import StreamPublisher

from .decision_metrics import AuthzMetrics
from .hdfs_audit import HdfsAuditWriter

log = logging.getLogger(__name__)

# AuthzAuditEvent's @SerializedName fields in declaration order (what Gson writes).
RANGER_FIELDS = ("repoType", "repo", "reqUser", "evtTime", "access", "resource", "resType", "action", "result",
                 "agent", "policy", "reason", "enforcer", "sess", "cliType", "cliIP", "reqData", "agentHost",
                 "logType", "id", "seq_num", "event_count", "event_dur_ms", "tags", "additional_info",
                 "cluster_name", "zone_name", "policy_version")


def ranger_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def log4j_line(event: AuditDecision) -> str:
    """The line Ranger's log4j destination writes for this event."""
    values = event.model_dump()
    return json.dumps({k: values[k] for k in RANGER_FIELDS if values.get(k) is not None},
                      separators=(",", ":"), ensure_ascii=False)


class AuditSink:
    def __init__(self, *, app_id: str, metrics: AuthzMetrics, publisher: Optional[StreamPublisher] = None,
                 log_path: Optional[Path] = None, queue_size: int = 10_000, cluster_name: str = "",
                 hdfs: Optional[HdfsAuditWriter] = None) -> None:
        self.app_id = app_id
        self.cluster_name = cluster_name
        self.host = socket.gethostname()
        self._metrics = metrics
        self._publisher = publisher
        self._log_path = log_path
        self._queue: Deque[AuditDecision] = deque()
        self._hdfs = hdfs
        # Events a destination has not taken yet, by destination.
        self._kept: Dict[str, Deque[AuditDecision]] = {"hdfs": deque(), "stream": deque()}
        self._queue_size = queue_size
        self._wake = asyncio.Event()
        self._seq = 0

    def record(self, *, service: str, deployment: str, user: Optional[str], model: str, action: str,
               allowed: bool, policy_id: int, policy_version: Optional[int], repo_type: int,
               client_ip: Optional[str], moment: datetime, reason: Optional[str] = None) -> None:
        if len(self._queue) >= self._queue_size:
            self._metrics.audit_events.labels("queue", "dropped").inc()
            return
        self._seq += 1
        self._queue.append(AuditDecision(
            deployment=deployment, repoType=repo_type, repo=service, reqUser=user or "", evtTime=ranger_time(moment),
            access=action, resource=model, action=action, result=1 if allowed else 0, agent=self.app_id,
            policy=policy_id, cliIP=client_ip, agentHost=self.host, seq_num=self._seq,
            cluster_name=self.cluster_name, policy_version=policy_version, reason=reason, ts=moment.timestamp()))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        batch: List[AuditDecision] = []
        while self._queue:
            batch.append(self._queue.popleft())
        if batch and self._log_path is not None:
            try:
                await asyncio.to_thread(self._append, batch)
                self._metrics.audit_events.labels("log4j", "written").inc(len(batch))
            except OSError as exc:
                self._metrics.audit_events.labels("log4j", "failed").inc(len(batch))
                log.error("cannot write the audit log", extra={"path": str(self._log_path), "error": str(exc)})
        if self._hdfs is not None:
            await self._send("hdfs", batch, self._write_hdfs)
        if self._publisher is not None:
            await self._send("stream", batch, lambda pending: self._publisher.publish_many(audit_stream(), pending))

    async def _send(self, destination: str, batch: List[AuditDecision], send) -> None:
        """Sends what was kept for ``destination`` plus ``batch``; on failure keeps them for the next flush."""
        kept = self._kept[destination]
        for event in batch:
            if len(kept) >= self._queue_size:
                kept.popleft()
                self._metrics.audit_events.labels(destination, "dropped").inc()
            kept.append(event)
        if not kept:
            return
        pending = list(kept)
        try:
            await send(pending)
        except Exception as exc:  # Redis or HDFS unreachable or refusing: keep the events, retry later
            self._metrics.audit_events.labels(destination, "failed").inc(len(pending))
            log.warning("audit destination unreachable; keeping events",
                        extra={"destination": destination, "pending": len(pending), "error": str(exc)})
            return
        for _ in pending:
            kept.popleft()
        self._metrics.audit_events.labels(destination, "published").inc(len(pending))

    async def _write_hdfs(self, pending: List[AuditDecision]) -> None:
        assert self._hdfs is not None
        await asyncio.to_thread(self._hdfs.write, [(e.evtTime, log4j_line(e)) for e in pending])

    def _append(self, batch: List[AuditDecision]) -> None:
        assert self._log_path is not None
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "a", encoding="utf-8") as handle:
            handle.write("".join(log4j_line(e) + "\n" for e in batch))
