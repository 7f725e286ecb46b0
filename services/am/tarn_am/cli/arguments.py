"""The `tarn` command line: the sub-commands' flags, and submit's flags into SubmitOptions' fields."""
from __future__ import annotations

import argparse
from typing import Dict

from tarn_shared import defaults

from ..model_copies import read_models_file
from ..policy_config import (CRASH_LOOP_FAILURES, CRASH_LOOP_WINDOW_S, HEARTBEAT_TIMEOUT_S, STABILIZATION_S,
                             START_TIMEOUT_S, BLOCKED_TIMEOUT_S)
from . import am_spnego, simulate
from .options import parse_env_pairs, truthy

SUBMIT_EXAMPLES = """\
examples:
  # the seeds' example, on a cluster with YARN's Docker runtime
  tarn submit --model-repository hdfs:///user/models --image nvcr.io/nvidia/tritonserver:24.09-py3 \\
      --port 8000 --metrics-port 8002 --am-port 8888 --address 0.0.0.0 --token my-secret-token \\
      --tp 2 --pp 1 --secrets hdfs:///user/secrets/hf.jceks --placement-tag nvidia \\
      --scale-up 0.8 --scale-down 0.2 --min-instances 2 --max-instances 8 --cooldown 120000 \\
      --python-env hdfs:///apps/tarn/tarn-env.tar.gz --env TRITON_LOG_VERBOSE=1 \\
      --zk-ensemble zk1:2181,zk2:2181 --zk-path /services/triton/instances -rs triton_prod -raudit

  # the local minicluster: containers are plain processes, the venv's Python is on every node
  tarn submit --name demo --runtime process --model-repository hdfs:///models \\
      --redis-url redis://127.0.0.1:6379/0 --min-instances 1 --max-instances 2

Secrets: prefer TARN_TOKEN in the environment to --token (command lines are visible to
other users). --cooldown is in milliseconds, as in the seeds.
"""

TARN_EPILOG = """\
environment:
  TARN_TOKEN, TARN_ADMIN_TOKEN     the API token and the token of /scale, /autoscale and /stop (instead of
                                   --token / --admin-token)
  TARN_AUTHZ_GATEWAY_TOKEN         tarn-authz's gateway token, for the AM to ask authz (--authz-gateway-token)
  RANGER_SERVICE, RANGER_APP_ID, RANGER_AUDIT   defaults of submit's -rs, -ra, -raudit
  PATH (with `yarn`), HADOOP_CONF_DIR, JAVA_HOME   Hadoop's client, which skein's driver needs

skein's driver and Hadoop's client log to a file per command in $XDG_CACHE_HOME/tarn (default
~/.cache/tarn), never to the terminal; --verbose names it.
exit codes: 0 ok, 1 operational error (YARN, tarn-am), 2 usage or configuration error, 130 interrupted.
"""


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tarn", description="Run NVIDIA Triton fleets on Hadoop YARN.",
                                     epilog=TARN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="say which file skein's driver and Hadoop's client log to (and log more there)")
    common.add_argument("--principal", help="Kerberos principal to log in as, with --keytab (default: the "
                                            "ticket cache from kinit)")
    common.add_argument("--keytab", help="keytab holding --principal's key")

    s = sub.add_parser("submit", help="submit a deployment to YARN", epilog=SUBMIT_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    seeds = s.add_argument_group("the seeds' flags")
    seeds.add_argument("--model-repository", required=True, help="hdfs:// URI, or an absolute path (NFS gateway)")
    seeds.add_argument("--image", help="Triton image for YARN's Docker runtime")
    seeds.add_argument("--port", type=int, help="Triton HTTP port (default 8000)")
    seeds.add_argument("--metrics-port", type=int, help="Triton metrics port (default 8002)")
    seeds.add_argument("--am-port", type=int, help="AM REST API port (default 8888; 0 = any free port)")
    seeds.add_argument("--address", help="AM bind address (default 0.0.0.0)")
    seeds.add_argument("--token", help="API token (or TARN_TOKEN)")
    seeds.add_argument("--tp", type=int, help="tensor parallelism (GPUs per container = tp x pp)")
    seeds.add_argument("--pp", type=int, help="pipeline parallelism")
    seeds.add_argument("--secrets", help="JCEKS credential file on HDFS")
    seeds.add_argument("--placement-tag", help="anti-affinity tag; names the per-node services (default nvidia)")
    seeds.add_argument("--scale-up", type=float,
                       help=f"load per instance above which to scale up (default {defaults.SCALE_UP})")
    seeds.add_argument("--scale-down", type=float,
                       help=f"load per instance below which to scale down (default {defaults.SCALE_DOWN})")
    seeds.add_argument("--min-instances", type=int)
    seeds.add_argument("--max-instances", type=int)
    seeds.add_argument("--cooldown", type=int, dest="cooldown_ms", metavar="MS",
                       help="milliseconds between opposite scaling moves (default 120000)")
    seeds.add_argument("--env", action="append", metavar="KEY=VALUE",
                       help="environment for Triton (repeatable); YARN's launch script expands it ($PWD works)")
    seeds.add_argument("--zk-ensemble")
    seeds.add_argument("--zk-path")
    seeds.add_argument("--ranger-service", "-rs", help="Ranger service name (or RANGER_SERVICE)")
    seeds.add_argument("--ranger-app-id", "-ra", help="Ranger application id (or RANGER_APP_ID; default tarn)")
    seeds.add_argument("--ranger-audit", "-raudit", action="store_true", default=None,
                       help="audit decisions (or RANGER_AUDIT=true)")
    ours = s.add_argument_group("TARN's own flags")
    ours.add_argument("--name", help=f"stable deployment name; keys its Redis streams (default {defaults.DEPLOYMENT})")
    ours.add_argument("--queue", help="YARN queue (default: default)")
    ours.add_argument("--node-label", help="YARN node label expression for the Triton containers")
    ours.add_argument("--redis-url")
    ours.add_argument("--authz-url", help="tarn-authz base URL (answers /authorize and filters /models)")
    ours.add_argument("--authz-gateway-token", help="tarn-authz's gateway token, the AM's credential there "
                                                    "(or TARN_AUTHZ_GATEWAY_TOKEN)")
    ours.add_argument("--haproxy-backend",
                      help=f"HAProxy backend gateway-sync keeps (default {defaults.HAPROXY_BACKEND})")
    ours.add_argument("--grpc-port", type=int, help="Triton gRPC port (default 8001)")
    ours.add_argument("--runtime", choices=["docker", "process"],
                      help="docker: YARN's Docker runtime (default); process: plain processes (minicluster)")
    ours.add_argument("--docker-network", help="Docker network (default host)")
    ours.add_argument("--docker-mount", action="append", dest="docker_mounts", metavar="SRC:DST:ro|rw")
    ours.add_argument("--python", help="a Python with tarn installed, present on every node "
                                       "(default: this interpreter; fits clusters sharing a filesystem)")
    ours.add_argument("--python-env", help="a conda-pack archive (local or hdfs://) shipped to the containers")
    ours.add_argument("--container-memory", type=int, dest="container_memory_mb", metavar="MIB")
    ours.add_argument("--container-vcores", type=int)
    ours.add_argument("--am-memory", type=int, dest="am_memory_mb", metavar="MIB")
    ours.add_argument("--nodes", help="comma-separated hosts allowed to run Triton (default: every RUNNING node "
                                      "with the label and the GPUs)")
    ours.add_argument("--instances", type=int, help="initial count (default --min-instances)")
    ours.add_argument("--drain-timeout", type=float, dest="drain_timeout_s", metavar="S",
                      help="seconds a drain may take before the container is released (default 60)")
    policy = s.add_argument_group("the policy's timings (seconds; each checked with the others before YARN)")
    policy.add_argument("--stabilization", type=float, dest="stabilization_s", metavar="S",
                        help=f"load stays below --scale-down this long before a drain (default {STABILIZATION_S:g})")
    policy.add_argument("--telemetry-interval", type=float, dest="telemetry_interval_s", metavar="S",
                        help="the node-agents' telemetry period, and the policy's: one decision per sample "
                             f"(default {defaults.TELEMETRY_INTERVAL_S:g})")
    policy.add_argument("--start-timeout", type=float, dest="start_timeout_s", metavar="S",
                        help=f"a container not ready after this long is replaced (default {START_TIMEOUT_S:g})")
    policy.add_argument("--heartbeat-timeout", type=float, dest="heartbeat_timeout_s", metavar="S",
                        help="a ready instance silent this long is replaced; at least twice the node-agent's "
                             f"heartbeat interval, {defaults.HEARTBEAT_INTERVAL_S:g} s (default {HEARTBEAT_TIMEOUT_S:g})")
    policy.add_argument("--blocked-timeout", type=float, dest="blocked_timeout_s", metavar="S",
                        help="a container request YARN does not fill in this long is reported blocked and "
                             f"re-placed on another free node (default {BLOCKED_TIMEOUT_S:g})")
    policy.add_argument("--crash-loop-failures", type=int, metavar="N",
                        help="this many failures within --crash-loop-window pause a node's restarts, and of "
                             f"tarn-am itself stop the application (default {CRASH_LOOP_FAILURES})")
    policy.add_argument("--crash-loop-window", type=float, dest="crash_loop_window_s", metavar="S",
                        help=f"the crash-loop window (default {CRASH_LOOP_WINDOW_S:g})")
    ours.add_argument("--tritonserver", help="tritonserver executable for the node-agent (process runtime)")
    ours.add_argument("--model-control-mode", choices=["none", "poll", "explicit"])
    models = s.add_argument_group("per-model placement (default: every model on every instance)")
    models.add_argument("--placement", choices=["all-models", "per-model"],
                        help="per-model: each model gets its own copies, placed by memory; Triton runs with "
                             "--model-control-mode explicit (default all-models)")
    models.add_argument("--model-min-copies", type=int, metavar="N", help="copies each model keeps (default 1; "
                                                                           "0 lets an idle model unload)")
    models.add_argument("--model-max-copies", type=int, metavar="N", help="copies a model may reach (default "
                                                                           "--max-instances)")
    models.add_argument("--model-memory", metavar="SIZE", help="a model's declared footprint until an agent "
                                                               "measures it, e.g. 2GiB")
    models.add_argument("--model-queue-time", type=float, dest="model_queue_ms", metavar="MS",
                        help="target queue time per request a model's copies are scaled to (default 100, "
                             "the node-agent's target)")
    models.add_argument("--models", metavar="FILE", help="models.yaml: per-model min/max/memory overriding the "
                                                         "flags; lists the deployment's models")
    ours.add_argument("--admin-token", help="token for /scale (or TARN_ADMIN_TOKEN; default: --token)")
    ours.add_argument("--allow-query-token", action="store_true", default=None,
                      help="accept ?token= (it leaks into logs; Grafana's seeds setup uses it)")
    ours.add_argument("--agent-env", action="append", metavar="KEY=VALUE",
                      help="extra environment for the node-agent itself (repeatable)")
    am_spnego.add_arguments(s)
    ours.add_argument("--no-autoscale", action="store_true", help="keep the count where tarn scale puts it")
    ours.add_argument("--dry-run", action="store_true",
                      help="print the skein spec (secrets hidden) and stop; reads no cluster (name the hosts "
                           "with --nodes, else the spec shows placeholders)")
    ours.add_argument("--wait", type=float, default=120.0, metavar="S",
                      help="wait this long for the AM to publish its address (0: don't)")

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default=defaults.DEPLOYMENT, help=f"deployment name (default {defaults.DEPLOYMENT})")
        p.add_argument("--app-id", help="YARN application id (default: the running one named tarn-NAME)")
        p.add_argument("--token", help="API token (or TARN_TOKEN)")

    st = sub.add_parser("status", help="show a deployment's instances and scaling state", parents=[common])
    target(st)
    st.add_argument("--json", action="store_true",
                    help="print tarn-am's /api/state with the app id and the AM's address as JSON (with --watch: "
                         "one document per line)")
    st.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    st.add_argument("--interval", type=positive_seconds, default=2.0, dest="interval_s", metavar="S",
                    help="seconds between refreshes with --watch (default 2)")
    mo = sub.add_parser("models", help="each model's copies wanted and loaded, where, memory, queue time, load "
                                       "time and last error (--placement per-model)", parents=[common])
    target(mo)
    mo.add_argument("--json", action="store_true", help="print tarn-am's /api/models with the app id and the AM's "
                                                        "address as JSON")
    sc = sub.add_parser("scale", help="set the target instance count, inside --min-instances..--max-instances",
                        parents=[common])
    target(sc)
    sc.add_argument("count", type=int)
    sc.add_argument("--reason", default="tarn scale")
    au = sub.add_parser("autoscale", help="pause (off) or resume (on) the autoscaling policy; the target holds "
                                          "while it is off, across tarn-am restarts", parents=[common])
    target(au)
    au.add_argument("switch", choices=["on", "off"])
    au.add_argument("--reason", default="tarn autoscale off", help="shown on the dashboard and in tarn status")
    sp = sub.add_parser("stop", help="pause autoscaling, drain every instance, release the deployment's record, "
                                     "then end the application", parents=[common])
    target(sp)
    sp.add_argument("--now", action="store_true", help="skip the drain")
    sp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the drain")
    lg = sub.add_parser("logs", help="print container logs (running: from the NodeManagers; finished: YARN's)",
                        parents=[common])
    target(lg)
    lg.add_argument("--container", help="a YARN or skein container id (default: all)")
    lg.add_argument("--file", help="only this log file, e.g. application.master.log (default: every file)")
    simulate.register(sub)
    return parser


def submit_values(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, object]:
    """argparse's namespace into SubmitOptions' fields, with the seeds' environment fallbacks."""
    values = {k: v for k, v in vars(args).items()
              if k not in ("command", "no_autoscale", "dry_run", "wait", "func", "verbose", "yarn",
                           "principal", "keytab", *am_spnego.FIELDS)
              and v is not None}
    values["env"] = parse_env_pairs(args.env)
    values["agent_env"] = parse_env_pairs(args.agent_env, "--agent-env")
    if args.models is not None:
        values["models"] = read_models_file(args.models)
    values.setdefault("token", environ.get("TARN_TOKEN") or None)
    values.setdefault("admin_token", environ.get("TARN_ADMIN_TOKEN") or None)
    values.setdefault("authz_gateway_token", environ.get("TARN_AUTHZ_GATEWAY_TOKEN") or None)
    values.setdefault("ranger_service", environ.get("RANGER_SERVICE") or None)
    values.setdefault("ranger_app_id", environ.get("RANGER_APP_ID") or None)
    if "ranger_audit" not in values and environ.get("RANGER_AUDIT"):
        values["ranger_audit"] = truthy(environ["RANGER_AUDIT"])
    return {k: v for k, v in values.items() if v is not None}
