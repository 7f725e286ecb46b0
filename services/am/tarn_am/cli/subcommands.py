"""What each `tarn` sub-command does (simulate's is in simulate.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

from .am_client import CliError, am_address, am_http, checked, find_app_id
from .arguments import submit_values
from .options import SubmitOptions
from .status_slots import slot_lines
from .status_view import show_status

def cmd_submit(args: argparse.Namespace) -> int:
    from .owners import check_owners
    from .preflight import check_before_submit
    from .spec import NodeInfo, build_spec, eligible_nodes, launcher_for
    options = SubmitOptions.parse(submit_values(args, dict(os.environ)))
    if not args.dry_run:
        check_before_submit(options, os.environ)  # what every container would refuse, refused before YARN
    client = None if args.dry_run else args.yarn.client()  # a dry run reads no cluster
    if client is not None:
        check_owners(options, client)  # a backend or ZooKeeper path another live deployment owns
    if options.nodes or client is None:
        nodes: List[NodeInfo] = []
    else:
        nodes = [NodeInfo(host=n.host, labels=frozenset(n.labels), gpus=getattr(n.total_resources, "gpus", None),
                          running=str(n.state) == "RUNNING") for n in client.get_nodes(states=["RUNNING"])]
    hosts = eligible_nodes(nodes, options) if client or options.nodes else dry_run_hosts(options)
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


def dry_run_hosts(options: SubmitOptions) -> List[str]:
    hosts = [f"dry-run-node-{n}" for n in range(1, options.max_instances + 1)]
    shown = hosts[0] if len(hosts) == 1 else f"{hosts[0]}..{hosts[-1]}"
    print(f"tarn submit: a dry run without --nodes reads no cluster: the spec shows placeholder hosts {shown} "
          "(one per --max-instances); give --nodes to see the real slots", file=sys.stderr)
    return hosts


def _target(args: argparse.Namespace):
    client = args.yarn.client()
    app_id = find_app_id(client, args.name, args.app_id)
    return client, app_id, am_address(client, app_id), args.token or os.environ.get("TARN_TOKEN")


def cmd_status(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    return show_status(args, app_id, address, token, render_status)


def render_status(state: Dict, address: str) -> str:
    lines = [f"{state['deployment']} {state['app_id']} at {address}",
             f"target {state['desired']} (bounds {state['min_instances']}..{state['max_instances']}"
             f"{'' if state['autoscale'] else ', manual'}), running {state['running']}, ready {state['ready']}"]
    if state.get("blocked"):
        lines.append(f"blocked {state['blocked']}: {state['blocked_reason']}")
    lines.extend(slot_lines(state))  # each blocked or crash-looping node, with its last failure
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
    with am_http(token) as http:
        result = checked(http.post(f"{address}/scale", json={"count": args.count, "reason": args.reason})).json()
    print(f"{app_id}: target {result['previous']} -> {result['desired']}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    if not args.now:
        with am_http(os.environ.get("TARN_ADMIN_TOKEN") or token) as http:
            checked(http.post(f"{address}/scale", json={"count": 0, "reason": "tarn stop"}))
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                state = checked(http.get(f"{address}/api/state")).json()
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
    client = args.yarn.client()
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
