"""The Hadoop client configuration as TARN reads it: the properties of core-site.xml and
hdfs-site.xml, and the WebHDFS URL(s) they give an ``hdfs://`` authority. One reading for
`tarn submit`'s check and the node-agent, so both reach the same NameNodes."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

log = logging.getLogger(__name__)
CONF_FILES = ("core-site.xml", "hdfs-site.xml")


def read_hadoop_conf(conf_dir: Optional[str], files: Sequence[str] = CONF_FILES) -> Dict[str, str]:
    """name -> value of every property in ``conf_dir``'s ``files`` (core-site.xml and hdfs-site.xml)."""
    conf: Dict[str, str] = {}
    if not conf_dir:
        return conf
    for name in files:
        path = Path(conf_dir) / name
        if not path.is_file():
            continue
        try:
            root = ElementTree.parse(path).getroot()
        except ElementTree.ParseError as exc:
            log.warning("unreadable Hadoop configuration file", extra={"path": str(path), "error": str(exc)})
            continue
        for prop in root.iter("property"):
            key, value = prop.findtext("name"), prop.findtext("value")
            if key and value is not None:
                conf[key.strip()] = value.strip()
    return conf


def webhdfs_urls_from_conf(conf: Mapping[str, str], authority: str) -> Optional[str]:
    """WebHDFS URL(s) for an hdfs:// authority from hdfs-site.xml properties (HA: every
    NameNode of the nameservice, ';'-separated, as HdfsCLI takes them)."""
    scheme = "https" if conf.get("dfs.http.policy", "HTTP_ONLY") == "HTTPS_ONLY" else "http"
    key = "dfs.namenode.https-address" if scheme == "https" else "dfs.namenode.http-address"
    nameservice = authority.split(":")[0] if authority else conf.get("dfs.nameservices", "").split(",")[0]
    namenodes = [n.strip() for n in conf.get(f"dfs.ha.namenodes.{nameservice}", "").split(",") if n.strip()]
    if namenodes:
        urls = [conf.get(f"{key}.{nameservice}.{nn}") for nn in namenodes]
        if all(urls):
            return ";".join(f"{scheme}://{u}" for u in urls)
    address = conf.get(f"{key}.{nameservice}") or conf.get(key)
    if not address:
        return None
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "") and authority:
        host = authority.split(":")[0]
    return f"{scheme}://{host}:{port}"


def kerberos_enabled(conf: Mapping[str, str]) -> bool:
    """core-site.xml's ``hadoop.security.authentication``: WebHDFS then wants SPNEGO."""
    return conf.get("hadoop.security.authentication", "simple").strip().lower() == "kerberos"
