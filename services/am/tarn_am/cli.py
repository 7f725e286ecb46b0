"""`tarn`: submit, status, scale, stop, logs (and simulate) for a TARN deployment on YARN."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

from tarn_shared.errors import ConfigError, TarnError

from .options import SubmitOptions, parse_env_pairs, truthy

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


class CliError(TarnError):
    """A failure to report in one line and exit 1."""


# ---------------------------------------------------------------- argument parsing

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tarn", description="Run NVIDIA Triton fleets on Hadoop YARN.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit a deployment to YARN", epilog=SUBMIT_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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
    seeds.add_argument("--scale-up", type=float, help="load per instance above which to scale up (default 0.8)")
    seeds.add_argument("--scale-down", type=float, help="load per instance below which to scale down (default 0.2)")
    seeds.add_argument("--min-instances", type=int)
    seeds.add_argument("--max-instances", type=int)
    seeds.add_argument("--cooldown", type=int, dest="cooldown_ms", metavar="MS",
                       help="milliseconds between opposite scaling moves (default 120000)")
    seeds.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment for Triton (repeatable)")
    seeds.add_argument("--zk-ensemble")
    seeds.add_argument("--zk-path")
    seeds.add_argument("--ranger-service", "-rs", help="Ranger service name (or RANGER_SERVICE)")
    seeds.add_argument("--ranger-app-id", "-ra", help="Ranger application id (or RANGER_APP_ID; default tarn)")
    seeds.add_argument("--ranger-audit", "-raudit", action="store_true", default=None,
                       help="audit decisions (or RANGER_AUDIT=true)")
    ours = s.add_argument_group("TARN's own flags")
    ours.add_argument("--name", help="stable deployment name; keys its Redis streams (default triton)")
    ours.add_argument("--queue", help="YARN queue (default: default)")
    ours.add_argument("--node-label", help="YARN node label expression for the Triton containers")
    ours.add_argument("--redis-url")
    ours.add_argument("--authz-url", help="tarn-authz base URL (answers /authorize and filters /models)")
    ours.add_argument("--haproxy-backend", help="HAProxy backend gateway-sync keeps (default triton_backend)")
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
    ours.add_argument("--drain-timeout", type=float, dest="drain_timeout_s", metavar="S")
    ours.add_argument("--tritonserver", help="tritonserver executable for the node-agent (process runtime)")
    ours.add_argument("--model-control-mode", choices=["none", "poll", "explicit"])
    ours.add_argument("--admin-token", help="token for /scale (or TARN_ADMIN_TOKEN; default: --token)")
    ours.add_argument("--allow-query-token", action="store_true", default=None,
                      help="accept ?token= (it leaks into logs; Grafana's seeds setup uses it)")
    ours.add_argument("--agent-env", action="append", metavar="KEY=VALUE",
                      help="extra environment for the node-agent itself (repeatable)")
    ours.add_argument("--no-autoscale", action="store_true", help="keep the count where tarn scale puts it")
    ours.add_argument("--dry-run", action="store_true", help="print the skein spec (secrets hidden) and stop")
    ours.add_argument("--wait", type=float, default=120.0, metavar="S",
                      help="wait this long for the AM to publish its address (0: don't)")

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="triton", help="deployment name (default triton)")
        p.add_argument("--app-id", help="YARN application id (default: the running one named tarn-NAME)")
        p.add_argument("--token", help="API token (or TARN_TOKEN)")

    st = sub.add_parser("status", help="show a deployment's instances and scaling state")
    target(st)
    st.add_argument("--json", action="store_true")
    sc = sub.add_parser("scale", help="set the target instance count")
    target(sc)
    sc.add_argument("count", type=int)
    sc.add_argument("--reason", default="tarn scale")
    sp = sub.add_parser("stop", help="drain every instance, then end the application")
    target(sp)
    sp.add_argument("--now", action="store_true", help="skip the drain")
    sp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the drain")
    lg = sub.add_parser("logs", help="print container logs (running: from the NodeManagers; finished: YARN's)")
    target(lg)
    lg.add_argument("--container", help="a YARN or skein container id (default: all)")
    lg.add_argument("--file", help="only this log file, e.g. application.master.log (default: every file)")
    try:
        from . import simulate
    except ImportError:  # the policy modules ship separately while being written
        simulate = None
    if simulate is not None:
        simulate.register(sub)
    return parser


def submit_values(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, object]:
    """argparse's namespace into SubmitOptions' fields, with the seeds' environment fallbacks."""
    values = {k: v for k, v in vars(args).items()
              if k not in ("command", "no_autoscale", "dry_run", "wait", "func") and v is not None}
    values["env"] = parse_env_pairs(args.env)
    values["agent_env"] = parse_env_pairs(args.agent_env, "--agent-env")
    if args.nodes:
        values["nodes"] = [n.strip() for n in args.nodes.split(",") if n.strip()]
    values.setdefault("token", environ.get("TARN_TOKEN") or None)
    values.setdefault("admin_token", environ.get("TARN_ADMIN_TOKEN") or None)
    values.setdefault("ranger_service", environ.get("RANGER_SERVICE") or None)
    values.setdefault("ranger_app_id", environ.get("RANGER_APP_ID") or None)
    if "ranger_audit" not in values and environ.get("RANGER_AUDIT"):
        values["ranger_audit"] = truthy(environ["RANGER_AUDIT"])
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------- YARN access (skein)

def _skein():
    import skein
    return skein


def skein_client():
    skein = _skein()
    try:
        return skein.Client(log_level="warn")
    except Exception as exc:  # the Java driver would not start: missing Hadoop, JAVA_HOME...
        raise CliError(f"cannot start skein's driver (is HADOOP_CONF_DIR set and `yarn` on PATH?): {exc}") from None


def find_app_id(client, name: str, app_id: Optional[str]) -> str:
    if app_id:
        return app_id
    apps = client.get_applications(name=f"tarn-{name}", states=["SUBMITTED", "ACCEPTED", "RUNNING"])
    if not apps:
        raise CliError(f"no running application named tarn-{name}; give --app-id")
    if len(apps) > 1:
        raise CliError(f"{len(apps)} running applications named tarn-{name}: "
                       f"{', '.join(a.id for a in apps)}; give --app-id")
    return apps[0].id


def am_address(client, app_id: str, wait_s: float = 0.0) -> str:
    from .yarn import KV_AM_ADDRESS
    deadline = time.monotonic() + wait_s
    while True:
        try:
            app = client.connect(app_id, wait=wait_s > 0)
            value = app.kv.get(KV_AM_ADDRESS)
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise CliError(f"cannot reach {app_id}'s application master: {exc}") from None
            value = None
        if value:
            return value.decode() if isinstance(value, bytes) else value
        if time.monotonic() >= deadline:
            raise CliError(f"{app_id}'s tarn-am has not published its address (yet)")
        time.sleep(0.5)


def _http(token: Optional[str]):
    import httpx
    headers = {"X-TARN-Token": token} if token else {}
    return httpx.Client(timeout=15.0, headers=headers, trust_env=False)


def _checked(response) -> object:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise CliError(f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}")
    return response


# ---------------------------------------------------------------- commands

def cmd_submit(args: argparse.Namespace) -> int:
    from .spec import NodeInfo, build_spec, eligible_nodes, launcher_for
    options = SubmitOptions.parse(submit_values(args, dict(os.environ)))
    client = None if (options.nodes and args.dry_run) else skein_client()
    if options.nodes:
        nodes: List[NodeInfo] = []
    else:
        nodes = [NodeInfo(host=n.host, labels=frozenset(n.labels), gpus=getattr(n.total_resources, "gpus", None),
                          running=str(n.state) == "RUNNING") for n in client.get_nodes(states=["RUNNING"])]
    hosts = eligible_nodes(nodes, options)
    if not hosts:
        raise CliError("no eligible node: none RUNNING with label "
                       f"{options.node_label or '(any)'} and {options.gpus} GPU(s); see `yarn node -list`")
    spec = build_spec(options, hosts, launcher_for(options, sys.executable))
    if args.no_autoscale:
        spec.master.env["TARN_AM_AUTOSCALE"] = "false"
    if args.dry_run:
        shown = spec.to_dict()
        for key in ("TARN_AM_TOKEN", "TARN_AM_ADMIN_TOKEN"):
            if key in shown["master"]["env"]:
                shown["master"]["env"][key] = "***"
        print(json.dumps(shown, indent=2, default=str))
        return 0
    started = time.monotonic()
    app_id = client.submit(spec)
    print(f"submitted {app_id} (tarn-{options.name}) on {len(hosts)} eligible node(s): {', '.join(hosts)}")
    if args.wait > 0:
        address = am_address(client, app_id, args.wait)
        print(f"tarn-am at {address} ({time.monotonic() - started:.1f} s after submit)")
    return 0


def _target(args: argparse.Namespace):
    client = skein_client()
    app_id = find_app_id(client, args.name, args.app_id)
    return client, app_id, am_address(client, app_id), args.token or os.environ.get("TARN_TOKEN")


def cmd_status(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    with _http(token) as http:
        state = _checked(http.get(f"{address}/api/state")).json()
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    print(render_status(state, address))
    return 0


def render_status(state: Dict, address: str) -> str:
    lines = [f"{state['deployment']} {state['app_id']} at {address}",
             f"target {state['desired']} (bounds {state['min_instances']}..{state['max_instances']}"
             f"{'' if state['autoscale'] else ', manual'}), running {state['running']}, ready {state['ready']}"]
    if state.get("blocked"):
        lines.append(f"blocked {state['blocked']}: {state['blocked_reason']}")
    if state.get("crash_looping"):
        lines.append(f"crash loop on: {', '.join(state['crash_looping'])}")
    lines.append(f"{'INSTANCE':<40} {'HOST':<16} {'ADDRESS':<22} {'STATE':<10} LOAD")
    for i in state["instances"]:
        load = "" if i["load"] is None else f"{i['load']:.2f}"
        lines.append(f"{i['instance_id']:<40} {i['host'] or '':<16} {i['address'] or '':<22} "
                     f"{'draining' if i['draining'] else i['state']:<10} {load}")
    for d in state["decisions"][:5]:
        lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(d['ts']))} {d['source']}: "
                     f"{d['previous']} -> {d['target']}: {d['reason']}")
    return "\n".join(lines)


def cmd_scale(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    token = os.environ.get("TARN_ADMIN_TOKEN") or token
    with _http(token) as http:
        result = _checked(http.post(f"{address}/scale", json={"count": args.count, "reason": args.reason})).json()
    print(f"{app_id}: target {result['previous']} -> {result['desired']}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    if not args.now:
        with _http(os.environ.get("TARN_ADMIN_TOKEN") or token) as http:
            _checked(http.post(f"{address}/scale", json={"count": 0, "reason": "tarn stop"}))
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                state = _checked(http.get(f"{address}/api/state")).json()
                if state["running"] == 0:
                    break
                time.sleep(1.0)
            else:
                print(f"drain not finished after {args.timeout:.0f} s; stopping anyway", file=sys.stderr)
    client.connect(app_id).shutdown("SUCCEEDED", "stopped by tarn stop")
    print(f"{app_id} stopped")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    import httpx
    client = skein_client()
    app_id = find_app_id(client, args.name, args.app_id)
    report = client.application_report(app_id)
    if str(report.state) in ("FINISHED", "FAILED", "KILLED"):
        try:
            logs = client.application_logs(app_id)
        except Exception as exc:
            raise CliError(f"YARN has no aggregated logs for {app_id} (is log aggregation on?): {exc}") from None
        for key, text in logs.items():
            if args.container and args.container not in key:
                continue
            print(f"==> {key} <==\n{text}")
        return 0
    app = client.connect(app_id)
    for container in app.get_containers(states=["RUNNING", "SUCCEEDED", "FAILED", "KILLED"]):
        if args.container and args.container not in (container.id, container.yarn_container_id):
            continue
        node = container.yarn_node_http_address
        base = f"http://{node}/ws/v1/node/containers/{container.yarn_container_id}/logs"
        try:
            with httpx.Client(timeout=10, trust_env=False) as http:
                names = [f["fileName"] for f in _container_log_files(http.get(base).json())]
                for name in names:
                    if args.file and name != args.file:
                        continue
                    text = http.get(f"{base}/{name}").text
                    print(f"==> {container.id} {container.yarn_container_id} {name} <==\n{text}")
        except (httpx.HTTPError, ValueError) as exc:
            print(f"==> {container.id}: logs unavailable from {node}: {exc}", file=sys.stderr)
    return 0


def _container_log_files(payload) -> List[Dict]:
    # The NodeManager answers a list of {containerLogInfo: [...]} (Hadoop 3) or one object.
    entries = payload if isinstance(payload, list) else [payload]
    files = []
    for entry in entries:
        info = entry.get("containerLogsInfo", entry).get("containerLogInfo", [])
        files.extend(info if isinstance(info, list) else [info])
    return files


COMMANDS = {"submit": cmd_submit, "status": cmd_status, "scale": cmd_scale, "stop": cmd_stop, "logs": cmd_logs}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in COMMANDS and hasattr(args, "func"):
        return args.func(args)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"tarn {args.command}: {exc}", file=sys.stderr)
        return 2
    except TarnError as exc:
        print(f"tarn {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
