"""Ranger's HDFS audit destination, over WebHDFS: one JSON line per event (the same line as
the log4j destination's) in Ranger's default layout,
``<dir>/<app type>/<yyyyMMdd>/<app type>_ranger_audit_<host>.log``
(``xasecure.audit.destination.hdfs.subdir`` %app-type%/%time:yyyyMMdd% and ``filename.format``
%app-type%_ranger_audit_%hostname%.log), so Ranger's own readers of that tree read ours."""
from __future__ import annotations

import posixpath
from collections import defaultdict
from datetime import datetime
from typing import Dict, List, Sequence, Tuple

import hdfs


def audit_path(directory: str, app_type: str, host: str, event_time: str) -> str:
    """``event_time``: the event's evtTime, ``yyyy-MM-dd HH:mm:ss.SSS`` (UTC)."""
    day = datetime.strptime(event_time[:10], "%Y-%m-%d").strftime("%Y%m%d")
    return posixpath.join(directory, app_type, day, f"{app_type}_ranger_audit_{host}.log")


def by_file(directory: str, app_type: str, host: str, lines: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
    """(evtTime, line) pairs grouped by the file each goes to, in order."""
    grouped: Dict[str, List[str]] = defaultdict(list)
    for event_time, line in lines:
        grouped[audit_path(directory, app_type, host, event_time)].append(line)
    return grouped


class HdfsAuditWriter:
    """Appends lines to the day's file, creating it (and its folders) first."""

    def __init__(self, url: str, directory: str, app_type: str, host: str, user: str) -> None:
        self._client = hdfs.InsecureClient(url, user=user, timeout=10)
        self.directory, self.app_type, self.host = directory, app_type, host

    def write(self, lines: Sequence[Tuple[str, str]]) -> None:
        """(evtTime, line) pairs. Raises hdfs.HdfsError, or OSError (requests' errors are)."""
        for path, chunk in by_file(self.directory, self.app_type, self.host, lines).items():
            data = "".join(line + "\n" for line in chunk).encode()
            exists = self._client.status(path, strict=False) is not None
            self._client.write(path, data=data, append=exists, overwrite=False)
