"""What each `tarn` sub-command does (simulate's is in simulate.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

from tarn_shared.errors import ConfigError

from .am_client import CliError, am_address, find_app_id
from .am_http import am_http, checked
from .arguments import submit_values
from .options import SubmitOptions
from .models_view import models_document, render_models
from .status_slots import model_lines, slot_lines
from .status_view import as_json, ended, show_status

def cmd_submit(args: argparse.Namespace) -> int:
    from . import am_spnego
    from .owners import check_owners
    from .preflight import check_before_submit, open_reader
    from .spec import SECRET_ENV, NodeInfo, build_spec, eligible_nodes, launcher_for
    options = SubmitOptions.parse(submit_values(args, dict(os.environ)))
    am_auth = am_spnego.am_auth_from(args, args.yarn.login)
    if options.placement == "per-model" and options.models is None and not args.dry_run:
        # tarn-am learns the deployment's models only from the file for now: without it Triton would serve none.
        raise ConfigError("--placement per-model needs --models FILE (the models to place); --dry-run shows "
                          "the spec and the plan")
    if not args.dry_run:  # what every container would refuse, refused before YARN
        check_before_submit(options, os.environ,
                            reader=lambda urls, user, kerberos: open_reader(urls, user, kerberos, args.yarn.login))
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
    if args.yarn.login is not None:
        from .am_keytab import ship_keytab
        ship_keytab(spec, args.yarn.login, os.environ)  # tarn-am re-obtains the containers' tokens with it
    am_spnego.apply(spec, am_auth, os.environ)
    if args.dry_run:
        shown = spec.to_dict()
        for key in SECRET_ENV:
            if key in shown["master"]["env"]:
                shown["master"]["env"][key] = "***"
        print(json.dumps(shown, indent=2, default=str))
        return 0
    started = time.monotonic()
    app_id = client.submit(spec)
    print(f"submitted {app_id} (tarn-{options.name}) on {len(hosts)} eligible node(s): {', '.join(hosts)}")
    if options.placement == "per-model":
        print("tarn submit: per-model placement routes a model only to the instances holding it where HAProxy has "
              "model slot backends (render_authz.py --model-slots N, docs/deploy.md); without them a model's "
              "requests go to every instance", file=sys.stderr)
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
    args.yarn.close()  # only tarn-am's HTTP API from here on
    return show_status(args, app_id, address, token, render_status)


def cmd_models(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    document = models_document(address, token, app_id, args.yarn.login)
    sys.stdout.write(ended(as_json(document) if args.json else render_models(document)))
    return 0


def render_status(state: Dict, address: str) -> str:
    lines = [f"{state['deployment']} {state['app_id']} at {address}",
             f"target {state['desired']} (bounds {state['min_instances']}..{state['max_instances']}), "
             f"running {state['running']}, ready {state['ready']}",
             "autoscale " + autoscale_text(state["autoscale"], state.get("autoscale_paused", False),
                                           state.get("autoscale_paused_reason"), state.get("autoscale_paused_at"),
                                           state.get("stopping", False))]
    for part, why in sorted(state.get("unavailable", {}).items()):
        lines.append(f"{part} unavailable: {why}")
    if state.get("blocked"):
        lines.append(f"blocked {state['blocked']}: {state['blocked_reason']}")
    lines.extend(slot_lines(state))  # each blocked or crash-looping node, with its last failure
    lines.extend(model_lines(state))  # --placement per-model: each model's copies
    lines.append(f"{'INSTANCE':<40} {'HOST':<16} {'ADDRESS':<22} {'STATE':<10} LOAD")
    for i in state["instances"]:
        load = "" if i["load"] is None else f"{i['load']:.2f}"
        lines.append(f"{i['instance_id']:<40} {i['host'] or '':<16} {i['address'] or '':<22} "
                     f"{'draining' if i['draining'] else i['state']:<10} {load}")
    for d in state["decisions"][:5]:
        lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(d['ts']))} {d['source']}: "
                     f"{d['previous']} -> {d['target']}: {d['reason']}")
    return "\n".join(lines)


def autoscale_text(on: bool, paused: bool, reason: Optional[str], paused_at: Optional[float], stopping: bool) -> str:
    if stopping:
        return "off: stopping (tarn stop)"
    if paused:
        since = f" since {time.strftime('%H:%M:%S', time.localtime(paused_at))}" if paused_at is not None else ""
        return f"paused{since}: {reason or 'paused'}"
    return "on" if on else "off"


def cmd_scale(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    with am_http(os.environ.get("TARN_ADMIN_TOKEN") or token, args.yarn.login) as http:
        result = checked(http.post(f"{address}/scale", json={"count": args.count, "reason": args.reason})).json()
    print(f"{app_id}: target {result['previous']} -> {result['desired']}")
    return 0


def cmd_autoscale(args: argparse.Namespace) -> int:
    client, app_id, address, token = _target(args)
    body = {"enabled": args.switch == "on", "reason": args.reason}
    with am_http(os.environ.get("TARN_ADMIN_TOKEN") or token, args.yarn.login) as http:
        result = checked(http.post(f"{address}/autoscale", json=body)).json()
    print(f"{app_id}: autoscale " + autoscale_text(result["autoscale"], result["paused"], result["paused_reason"],
                                                   result["paused_at"], result["stopping"]))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Pause the policy and drain (tarn-am's /stop), wait, release the record, end the application."""
    client, app_id, address, token = _target(args)
    with am_http(os.environ.get("TARN_ADMIN_TOKEN") or token, args.yarn.login) as http:
        try:
            checked(http.post(f"{address}/stop", json={"drain": not args.now, "reason": "tarn stop"}))
        except Exception as exc:
            if not args.now:
                raise
            print(f"tarn stop: tarn-am did not take the stop ({exc}); ending the application anyway", file=sys.stderr)
        if not args.now:
            wait_drained(http, address, args.timeout)
            released = checked(http.post(f"{address}/stop", json={"drain": False, "reason": "tarn stop"})).json()
            if not released["record_removed"]:
                print("tarn stop: tarn-am could not mark the deployment's record removed (Redis unreachable?); "
                      "the next tarn submit on its places releases it", file=sys.stderr)
    client.connect(app_id).shutdown("SUCCEEDED", "stopped by tarn stop")
    print(f"{app_id} stopped")
    return 0


def wait_drained(http, address: str, timeout_s: float) -> None:
    import httpx
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if checked(http.get(f"{address}/api/state")).json()["running"] == 0:
                return
        except (httpx.HTTPError, CliError):  # tarn-am restarting: it keeps the stop, keep waiting
            pass
        time.sleep(1.0)
    print(f"tarn stop: drain not finished after {timeout_s:.0f} s; stopping anyway", file=sys.stderr)


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


COMMANDS = {"submit": cmd_submit, "status": cmd_status, "models": cmd_models, "scale": cmd_scale,
            "autoscale": cmd_autoscale, "stop": cmd_stop, "logs": cmd_logs}
