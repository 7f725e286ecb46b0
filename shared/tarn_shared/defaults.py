"""Deployment defaults that `tarn submit`, the AM, the deployment record and the services
must agree on: one place, so a changed default cannot leave one of them behind."""

DEPLOYMENT = "triton"
REDIS_URL = "redis://127.0.0.1:6379/0"
ZK_PATH = "/services/triton/instances"
HAPROXY_BACKEND = "triton_backend"
# Load per instance above which the fleet grows, below which it shrinks (the seeds' flags).
SCALE_UP = 0.8
SCALE_DOWN = 0.2
# The node-agent's reporting periods (seconds): tarn-am's policy and heartbeat timeout are checked
# against them, so both sides read them here.
TELEMETRY_INTERVAL_S = 2.0
HEARTBEAT_INTERVAL_S = 5.0
