"""Field names of Ranger's AuthzAuditEvent (@SerializedName), in declaration order: what
Gson, and so Ranger's log4j audit destination, writes."""
RANGER_AUDIT_FIELDS = (
    "repoType", "repo", "reqUser", "evtTime", "access", "resource", "resType", "action", "result", "agent",
    "policy", "reason", "enforcer", "sess", "cliType", "cliIP", "reqData", "agentHost", "logType", "id",
    "seq_num", "event_count", "event_dur_ms", "tags", "additional_info", "cluster_name", "zone_name",
    "policy_version",
)
