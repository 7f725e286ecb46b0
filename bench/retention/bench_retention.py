"""Redis memory over a simulated day of a churning fleet (issue 13, item 4), against a real
redis-server this script starts on a free port (no persistence, as in production).

The fleet (fleet_day.py): ``--instances`` Triton instances, each living an exponential lifetime
(mean ``--mean-lifetime-h``) and then drained and replaced, one snapshot every ``--tick-s``
simulated seconds (5, tarn-am's interval; a longer tick runs the day faster, with fewer snapshots), with tarn-am's real bus, view, announcer and consumer groups, two gateway-sync groups
(one lagging) and per-container command streams read by node-agent groups. Redis ``used_memory``
is sampled every simulated hour; at each sample a tarn-am restarted from nothing
(``RedisBus.bootstrap``) and a gateway-sync restarted from nothing (``discovery.replay``) must
rebuild exactly the fleet the agents announced.

Baseline: ``used_memory`` at the end of the warm-up (``--warmup-h``), measured in the same run.
Targets: every sample after the warm-up <= ``--bound-mb``; end of day / after warm-up <=
``--flat-ratio``; every rebuild exact; no command stream of an ended container left.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_day import APP, FleetDay  # noqa: E402

from tarn_shared import events as ev  # noqa: E402
from tarn_shared.membership import MembershipView  # noqa: E402
from tarn_shared.streams import connect  # noqa: E402

from tarn_am.bus import RedisBus  # noqa: E402
from tarn_am.view import FleetView  # noqa: E402
from tarn_gateway_sync.discovery import replay  # noqa: E402
from tarn_gateway_sync.routing import Fleet  # noqa: E402

DEPLOYMENT = "retention"
MB = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(run_dir: str) -> "tuple[subprocess.Popen, str]":
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", run_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start on port {port}")
        time.sleep(0.05)


def alive(view: MembershipView) -> Dict[str, tuple]:
    return {i: (m.state, m.seq, m.endpoints.address if m.endpoints else None) for i, m in view.members.items()
            if m.state is not ev.InstanceState.STOPPED}


async def rebuilds_exactly(url: str, day: FleetDay) -> List[str]:
    """What a tarn-am and a gateway-sync restarted now get wrong (empty: nothing)."""
    wrong, truth = [], day.truth()
    if not day.announcer_agrees():
        wrong.append("the bench's snapshot differs from what tarn-am's Announcer would publish")
    bus = RedisBus(url, DEPLOYMENT, APP)
    view = FleetView(DEPLOYMENT)
    await bus.bootstrap(view)
    if alive(view.membership) != truth:
        wrong.append(f"tarn-am rebuilt {len(alive(view.membership))} instances, the fleet has {len(truth)}")
    fleet = await replay(bus.client, ev.lifecycle_stream(DEPLOYMENT), Fleet())
    if alive(fleet.view) != truth or sorted(fleet.routable()) != day.routable():
        wrong.append(f"gateway-sync rebuilt {len(fleet.routable())} routable, the fleet has {len(day.routable())}")
    await bus.close()
    return wrong


async def used_memory(client) -> int:
    return int((await client.info("memory"))["used_memory"])


async def command_streams(client) -> int:
    return len([k async for k in client.scan_iter(match=f"tarn:{DEPLOYMENT}:commands:*", count=1000)])


async def run(args, url: str) -> Dict:
    started = time.monotonic()
    bus = RedisBus(url, DEPLOYMENT, APP)
    per_hour = int(3600 / args.tick_s)
    day = FleetDay(bus, args.instances, args.mean_lifetime_h * per_hour, round(args.telemetry_per_s * args.tick_s),
                   args.lag_ticks)
    start_memory = await used_memory(bus.client)
    await day.start()
    samples, wrong = [], []
    for tick in range(1, int(args.day_h * per_hour) + 1):
        await day.step()
        if tick % int(args.check_every_h * per_hour) == 0:
            hour = tick / per_hour
            memory = await used_memory(bus.client)
            missed = await rebuilds_exactly(url, day)
            wrong += [f"h{hour:g}: {w}" for w in missed]
            lifecycle = await bus.client.xlen(ev.lifecycle_stream(DEPLOYMENT))
            samples.append({"hour": hour, "used_memory": memory, "lifecycle_entries": lifecycle})
            print(f"  h{hour:>4g}: used_memory {memory / MB:6.1f} MB, lifecycle {lifecycle} entries, "
                  f"rebuild {'exact' if not missed else 'WRONG'} ({time.monotonic() - started:.0f} s)", flush=True)
    commanded = sum(1 for i in day.fleet.values() if i.phase in ("commanded", "draining", "unrouted"))
    result = {
        "start_memory": start_memory, "samples": samples, "rebuild_errors": wrong,
        "lifecycle_bytes_published": day.lifecycle_bytes(), "snapshots": day.counts["snapshots"],
        "replaced": day.counts["replaced"], "instances": len(day.truth()), "routable": len(day.routable()),
        "telemetry_entries": await bus.client.xlen(ev.telemetry_stream(DEPLOYMENT)),
        "acks_entries": await bus.client.xlen(ev.acks_stream(DEPLOYMENT)),
        "command_streams_left": await command_streams(bus.client), "commands_in_flight": commanded,
        "wall_s": time.monotonic() - started,
    }
    await bus.close()
    return result


def report(args, result: Dict) -> bool:
    after = [s for s in result["samples"] if s["hour"] >= args.warmup_h]
    if not after:
        raise SystemExit("no sample after the warm-up: run a longer day or a shorter warm-up")
    baseline, end = after[0]["used_memory"], result["samples"][-1]["used_memory"]
    peak = max(s["used_memory"] for s in after)
    flat, bound = end / baseline, args.bound_mb * MB
    checks = {
        f"used_memory after warm-up <= {args.bound_mb:g} MB": peak <= bound,
        f"flat: end / after warm-up <= {args.flat_ratio:g}x": flat <= args.flat_ratio,
        "every restarted consumer rebuilt the exact fleet": not result["rebuild_errors"],
        "no command stream of an ended container left": result["command_streams_left"] <= result["commands_in_flight"],
    }
    print(f"simulated {args.day_h:g} h of {args.instances} instances: {result['replaced']} replaced, "
          f"{result['snapshots']} snapshots (one every {args.tick_s:g} simulated s), {result['wall_s']:.0f} s wall")
    print(f"redis used_memory: start {result['start_memory'] / MB:.1f} MB, after warm-up ({after[0]['hour']:g} h) "
          f"{baseline / MB:.1f} MB, end of day {end / MB:.1f} MB, peak after warm-up {peak / MB:.1f} MB; "
          f"bound {args.bound_mb:g} MB")
    print(f"flatness: end / after warm-up = {flat:.2f}x (target <= {args.flat_ratio:g}x); "
          f"peak / after warm-up = {peak / baseline:.2f}x; end / bound = {end / bound:.2f}")
    print(f"lifecycle: {result['samples'][-1]['lifecycle_entries']} entries kept; "
          f"about {result['lifecycle_bytes_published'] / MB:.0f} MB published over the day (what an untrimmed stream "
          f"would hold, {result['lifecycle_bytes_published'] / max(end, 1):.0f}x the end-of-day used_memory)")
    print(f"telemetry {result['telemetry_entries']} entries (cap {ev.TELEMETRY_MAXLEN}), acks "
          f"{result['acks_entries']}, command streams {result['command_streams_left']} "
          f"(containers with a command in flight: {result['commands_in_flight']})")
    print(f"at the end: {result['instances']} instances, {result['routable']} routable")
    for error in result["rebuild_errors"][:10]:
        print(f"  rebuild: {error}")
    for name, ok in checks.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    print(json.dumps({**result, "baseline_memory": baseline, "end_memory": end, "peak_memory": peak,
                      "flat_ratio": flat, "bound": bound, "checks": checks}))
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--tick-s", type=float, default=ev.SNAPSHOT_INTERVAL_S,
                        help="simulated seconds between snapshots (tarn-am's is 5 s; more runs a day faster)")
    parser.add_argument("--day-h", type=float, default=24.0)
    parser.add_argument("--mean-lifetime-h", type=float, default=4.0)
    parser.add_argument("--telemetry-per-s", type=float, default=5.0,
                        help="samples per simulated second (a real fleet of 1,000 sends 1,000); any rate that "
                             "refills the cap within the warm-up gives the same memory")
    parser.add_argument("--lag-ticks", type=int, default=10, help="how many ticks the slow gateway group lags")
    parser.add_argument("--warmup-h", type=float, default=2.0)
    parser.add_argument("--check-every-h", type=float, default=1.0)
    parser.add_argument("--bound-mb", type=float, default=100.0)
    parser.add_argument("--flat-ratio", type=float, default=1.2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops redis-server
    with tempfile.TemporaryDirectory(prefix="tarn-retention-") as run_dir:
        proc, url = start_redis(run_dir)
        try:
            result = asyncio.run(run(args, url))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0 if report(args, result) else 1


if __name__ == "__main__":
    sys.exit(main())
