"""tarn-am at run time: wires the adapters, the view, the control loop and the REST API,
publishes the address and the deployment record, and runs them until a signal or a failure."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Optional

import uvicorn

from tarn_shared.errors import ConfigError, TarnError

from .app import ApiContext, create_app
from .authz import authz_client
from .bus import RedisBus
from .controller import Controller
from .history_keeper import keep_history, restore, take_point
from .record_keeper import RecordKeeper, deployment_record
from .settings import AmSettings
from .token_keeper import token_keeper_for
from .view import FleetView
from .yarn import KV_AM_ADDRESS, YarnAdapter

log = logging.getLogger("tarn_am")
EXIT_CONFIG = 78  # EX_CONFIG: the supervisor gives up instead of restarting
DASHBOARD_ROUTE = "tarn"


def bind_socket(settings: AmSettings) -> socket.socket:
    """Bind the API port; a port picked at random (0) is remembered so a restart keeps it."""
    port = settings.port
    if port == 0 and settings.port_file.exists():
        remembered = settings.port_file.read_text().strip()
        port = int(remembered) if remembered.isdigit() else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.address, port))
    except OSError as exc:
        sock.close()
        raise TarnError(f"cannot bind {settings.address}:{port}: {exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    if settings.port == 0:
        settings.port_file.write_text(f"{sock.getsockname()[1]}\n")
    return sock


def advertised_address(settings: AmSettings, sock: socket.socket) -> str:
    return f"http://{settings.public_host()}:{sock.getsockname()[1]}"


async def publish_address(yarn: YarnAdapter, bus: RedisBus, settings: AmSettings, address: str) -> None:
    await asyncio.to_thread(yarn.kv_put, KV_AM_ADDRESS, address)
    try:
        # The dashboard behind the application's tracking URL (YARN's web proxy).
        await asyncio.to_thread(yarn.add_page, DASHBOARD_ROUTE, address, "TARN dashboard")
    except TarnError as exc:
        log.warning("could not add the dashboard to YARN's UI", extra={"error": str(exc)})


async def serve(settings: AmSettings, yarn: Optional[YarnAdapter] = None) -> int:
    if not settings.slot_list():
        raise ConfigError("TARN_AM_SLOTS names no node: tarn submit found no eligible node")
    started = time.monotonic()
    yarn = yarn or await asyncio.to_thread(YarnAdapter.from_current)
    app_id = settings.app_id or yarn.app_id
    bus = RedisBus(settings.redis_url, settings.deployment, app_id)
    view = FleetView(settings.deployment)
    try:
        replayed = await bus.bootstrap(view)
    except Exception as exc:  # Redis down: the consumer groups catch up when it is back
        replayed = 0
        log.warning("could not replay the lifecycle stream", extra={"error": repr(exc)})
    history = await restore(bus, settings, view, time.time())  # before take_over: its decision comes last
    keeper = token_keeper_for(settings, os.environ)
    if keeper is not None:  # before any container starts: the first ones get a fresh token too
        yarn.container_env = keeper.container_env
        await asyncio.to_thread(keeper.refresh_due)
    controller = Controller(settings, yarn, bus, view)
    await controller.take_over()
    authz = authz_client(settings)
    context = ApiContext(controller=controller, authz=authz, history=history)
    app = create_app(settings, context)

    sock = bind_socket(settings)
    address = advertised_address(settings, sock)
    context.address = address
    record = RecordKeeper(bus, deployment_record(settings, app_id, address))
    context.remove_record = record.remove
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    placer = controller.policy.models  # in --placement per-model, it takes the gateways' demands
    bus.consumers_for(view, on_change=controller.wake, also=placer.demands.apply if placer else None)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]), name="api"),
        asyncio.create_task(bus.run_consumers(stop), name="consumers"),
        asyncio.create_task(controller.run(stop), name="control-loop"),
        asyncio.create_task(record.keep(stop, lambda: controller.target.stopping,
                                        lambda: not controller.view.live_instances()), name="record"),
        asyncio.create_task(keep_history(lambda now: take_point(controller, history, now), history, bus, settings,
                                         stop), name="history"),
    ]
    if keeper is not None:
        tasks.append(asyncio.create_task(keeper.run(stop), name="tokens"))
    await publish_address(yarn, bus, settings, address)
    log.info("tarn-am serving", extra={"app_id": app_id, "address": address, "replayed_entries": replayed,
                                       "startup_s": round(time.monotonic() - started, 3), "pid": os.getpid()})
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait(tasks + [stopper], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stopper]
    for task in failed:
        log.error("a tarn-am task ended; exiting for the supervisor to restart us",
                  extra={"task": task.get_name(), "error": repr(task.exception()) if not task.cancelled() else "cancelled"})
    stop.set()
    server.should_exit = True
    if controller.target.stopping:  # `tarn stop` ends the application: gateway-sync must let it go
        await record.remove()
    await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    await authz.close()
    await bus.close()
    return 1 if failed else 0
