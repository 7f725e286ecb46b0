"""A fleet's day on one Redis, time-compressed: one tick is one snapshot interval (5 s).

Each tick, in the order the services do it:
1. the node-agents announce (ready, draining, stopped), obey drain commands through their own
   consumer group on their command stream and ack them; gateway-sync announces unrouted;
   telemetry samples go out with the node-agent's cap (``TELEMETRY_MAXLEN``);
2. tarn-am's real consumers (``RedisBus.consumers_for``) read lifecycle, telemetry and acks into
   a real ``FleetView``;
3. tarn-am announces container events, sends drain commands for instances whose lifetime is
   over, deletes the command streams of ended containers, and publishes the ``Announcer``'s
   snapshot through ``RedisBus.publish_snapshot``, which trims;
4. two gateway-sync groups read the lifecycle stream: one every tick, one every ``lag_ticks``.

Compressed: tarn-am and the gateways' groups skip parsing a snapshot's member list (tarn-am's
handler ignores it; a gateway would apply it); the consumers rebuilt at each check decode
everything. Telemetry: ``telemetry_per_tick`` samples a tick (5 a simulated second by default),
not 1,000 a second: enough to fill the cap within the warm-up and refill it many times a day.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Set

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import StreamPublisher

from tarn_am.announcements import Announcer
from tarn_am.bus import RedisBus
from tarn_am.view import FleetView

APP = "application_1700000000000_0001"
SNAPSHOT_TAG = b'{"type":"membership.snapshot"'
MODELS = ["resnet50", "bert-large"]
STOPPED = ev.InstanceState.STOPPED


def peek(fields) -> ev.Event:
    """``events.decode``, except that a snapshot's members are not parsed (see the module doc)."""
    raw = fields.get(ev.ENTRY_FIELD.encode()) or b""
    if raw.startswith(SNAPSHOT_TAG):
        return ev.MembershipSnapshot.model_construct(type="membership.snapshot", deployment="", app_id=APP,
                                                     snapshot_seq=0, desired_count=0, members=[])
    return ev.decode(fields)


@dataclass
class Instance:
    slot: int
    container_id: str
    ends_at: int  # the tick its lifetime is over and tarn-am drains it
    seq: int = 0
    state: Optional[ev.InstanceState] = None  # as its agent (or gateway-sync) last announced
    phase: str = "requested"  # requested, serving, commanded, draining, unrouted, stopped
    commands: Optional[StreamConsumer] = None

    @property
    def endpoints(self) -> ev.Endpoints:
        return ev.Endpoints(host=f"gpu{self.slot:04d}.cluster.example.com", http_port=8000, grpc_port=8001,
                            metrics_port=8002, agent_port=40000 + self.slot)


@dataclass
class FleetDay:
    bus: RedisBus
    instances: int
    mean_lifetime_ticks: float
    telemetry_per_tick: int
    lag_ticks: int
    rng: random.Random = field(default_factory=lambda: random.Random(4))
    tick: int = 0
    fleet: Dict[int, Instance] = field(default_factory=dict)
    born: int = 0
    view: FleetView = field(init=False)
    announcer: Announcer = field(init=False)
    counts: Dict[str, int] = field(default_factory=lambda: {"replaced": 0, "lifecycle_bytes": 0, "snapshots": 0})
    snapshot_sizes: List[int] = field(default_factory=list)
    _samples: Dict[str, ev.TelemetrySample] = field(default_factory=dict)
    _member_cache: Dict[tuple, ev.MemberState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.deployment = self.bus.deployment
        self.view = FleetView(self.deployment)
        self.announcer = Announcer(self.deployment, APP)
        self.publisher = StreamPublisher(self.bus.client)
        self.lifecycle = ev.lifecycle_stream(self.deployment)
        self.bus.consumers_for(self.view)
        for consumer in self.bus.consumers:
            consumer._decode = peek  # noqa: SLF001 - the compression the module doc states
            consumer.config.block_ms = None  # a tick reads what is there (a 1 ms BLOCK can last a 100 ms cron tick)
        self.gateways = [StreamConsumer(self.bus.client, [self.lifecycle], ConsumerConfig(
            group=f"gateway-sync.{name}", consumer=name, block_ms=None, count=500, start_id="$"), self._ignore,
            decode=peek) for name in ("a", "b")]

    async def start(self) -> None:
        for consumer in self.bus.consumers + self.gateways:
            await consumer.ensure_groups()
        for slot in range(self.instances):
            await self._request(slot)

    async def step(self) -> None:
        self.tick += 1
        await self._agents()
        for consumer in self.bus.consumers:
            while await consumer.run_once() >= consumer.config.count:
                pass
        await self._am()
        await self.gateways[0].run_once()
        if self.tick % self.lag_ticks == 0:
            await self.gateways[1].run_once()

    # -- the node-agents and gateway-sync --------------------------------------------------
    async def _agents(self) -> None:
        ready = []
        for inst in list(self.fleet.values()):
            if inst.phase == "requested":
                await self._announce(inst, ev.InstanceReady, "serving")
            elif inst.phase == "commanded":
                await inst.commands.run_once()  # the agent reads its drain command and acks it
            elif inst.phase == "draining":
                await self._announce(inst, ev.InstanceUnrouted, "unrouted", same_seq=True)
            elif inst.phase == "unrouted":
                await self._announce(inst, ev.InstanceStopped, "stopped")
            if inst.phase == "serving":
                ready.append(inst)
        batch = [self._sample(i) for i in self.rng.sample(ready, min(len(ready), self.telemetry_per_tick))]
        if batch:
            await self.publisher.publish_many(ev.telemetry_stream(self.deployment), batch, maxlen=ev.TELEMETRY_MAXLEN)

    async def _announce(self, inst: Instance, kind, phase: str, same_seq: bool = False, **extra) -> None:
        inst.seq += 0 if same_seq else 1
        event = kind(deployment=self.deployment, app_id=APP, instance_id=inst.container_id, seq=inst.seq,
                     endpoints=inst.endpoints, models=MODELS, **extra)
        fields = ev.encode(event)
        self.counts["lifecycle_bytes"] += len(fields[ev.ENTRY_FIELD])
        await self.publisher.publish(self.lifecycle, event)
        inst.state, inst.phase = event.state, phase

    async def _on_command(self, inst: Instance, command: ev.Event) -> None:
        ack = ev.CommandAck(deployment=self.deployment, app_id=APP, container_id=inst.container_id,
                            command_id=command.command_id, command_type=command.type, status=ev.AckStatus.ACCEPTED)
        await self.publisher.publish(ev.acks_stream(self.deployment), ack)
        await self._announce(inst, ev.InstanceDraining, "draining", command_id=command.command_id)

    def _sample(self, inst: Instance) -> ev.TelemetrySample:
        """A sample with two models and a GPU (about 900 bytes), built once per instance."""
        sample = self._samples.get(inst.container_id)
        if sample is None:
            sample = self._samples[inst.container_id] = ev.TelemetrySample(
                deployment=self.deployment, app_id=APP, instance_id=inst.container_id, interval_s=1.0, load=0.7,
                models=[ev.ModelSample(name=m, version="1", request_rate_per_s=31.5, queue_time_per_request_us=812.0,
                                       pending_requests=1.0) for m in MODELS],
                gpus=[ev.GpuSample(index=0, uuid=f"GPU-{inst.slot:08d}-2f4e-4a4e-9a7e-0123456789ab",
                                   name="NVIDIA A100-SXM4-80GB", utilization_pct=55.0,
                                   memory_used_bytes=40_000_000_000, memory_total_bytes=80_000_000_000)])
        return sample

    @staticmethod
    async def _ignore(stream: str, entry_id: str, event: ev.Event) -> None:
        return None

    # -- tarn-am ----------------------------------------------------------------------------
    async def _am(self) -> None:
        ended = []
        for inst in list(self.fleet.values()):
            if inst.phase == "serving" and self.tick >= inst.ends_at:
                await self._drain(inst)
            elif inst.phase == "stopped":
                await self._publish(ev.ContainerCompleted(
                    deployment=self.deployment, app_id=APP, container_id=inst.container_id,
                    service=f"nvidia-{inst.slot}", diagnostics="released after drain"))
                ended.append(inst.container_id)
                self.counts["replaced"] += 1
                await self._request(inst.slot)
        await self.bus.delete_command_streams(ended)
        live = {i.container_id for i in self.fleet.values()}
        if self.tick % 100 == 0:
            self.view.forget_instance_data(live)
            self._samples = {i: s for i, s in self._samples.items() if i in live}
        self.announcer = replace(self.announcer, snapshot_seq=self.announcer.snapshot_seq + 1)
        snapshot = ev.MembershipSnapshot(
            deployment=self.deployment, app_id=APP, snapshot_seq=self.announcer.snapshot_seq,
            lifecycle_through=self.view.lifecycle_through, desired_count=len(self.fleet),
            members=self.member_states(live))
        await self.bus.publish_snapshot(snapshot, live)
        self.counts["snapshots"] += 1
        if self.tick % 100 == 1:  # encoding every one again would double the bench's main cost
            self.snapshot_sizes.append(len(ev.encode(snapshot)[ev.ENTRY_FIELD]))

    def member_states(self, live: Set[str]) -> List[ev.MemberState]:
        """What ``Announcer.snapshot`` lists, each member built once per (instance, state, seq):
        building 1,000 a tick is what a real tarn-am can afford every 5 s but a compressed day
        cannot. ``announcer_agrees`` checks the two against each other."""
        states = []
        for member in self.view.membership.members.values():
            if member.state is STOPPED or member.instance_id not in live:
                continue
            key = (member.instance_id, member.state, member.seq)
            state = self._member_cache.get(key)
            if state is None:
                state = self._member_cache[key] = ev.MemberState(
                    instance_id=member.instance_id, state=member.state, seq=member.seq, endpoints=member.endpoints,
                    models=list(member.models))
            states.append(state)
        if len(self._member_cache) > 4 * self.instances:
            self._member_cache = {(s.instance_id, s.state, s.seq): s for s in states}
        return states

    def announcer_agrees(self) -> bool:
        live = {i.container_id for i in self.fleet.values()}
        real, _ = self.announcer.snapshot(self.view.membership.members, live, self.view.lifecycle_through,
                                          len(self.fleet))
        return real.members == self.member_states(live)

    async def _request(self, slot: int) -> None:
        self.born += 1
        container_id = f"container_e01_1700000000000_0001_01_{self.born:06d}"
        lifetime = max(2, int(self.rng.expovariate(1 / self.mean_lifetime_ticks)))
        self.fleet[slot] = Instance(slot, container_id, self.tick + lifetime)
        await self._publish(ev.ContainerRequested(deployment=self.deployment, app_id=APP, service=f"nvidia-{slot}",
                                                  reason="replacement"))
        await self._publish(ev.ContainerRunning(deployment=self.deployment, app_id=APP, container_id=container_id,
                                                service=f"nvidia-{slot}"))

    async def _publish(self, event: ev.Event) -> None:
        self.counts["lifecycle_bytes"] += len(ev.encode(event)[ev.ENTRY_FIELD])
        await self.bus.publish_lifecycle(event)

    async def _drain(self, inst: Instance) -> None:
        await self.bus.send_command(ev.DrainCommand(deployment=self.deployment, app_id=APP,
                                                    container_id=inst.container_id))
        inst.commands = StreamConsumer(
            self.bus.client, [ev.commands_stream(self.deployment, inst.container_id)],
            ConsumerConfig(group="node-agent", consumer=inst.container_id, block_ms=None),
            lambda s, i, e, inst=inst: self._on_command(inst, e))
        inst.phase = "commanded"

    def lifecycle_bytes(self) -> int:
        """About what the day published on the lifecycle stream (snapshots at their mean size)."""
        mean = sum(self.snapshot_sizes) / max(1, len(self.snapshot_sizes))
        return self.counts["lifecycle_bytes"] + int(mean * self.counts["snapshots"])

    # -- what a restarted consumer must rebuild ---------------------------------------------
    def truth(self) -> Dict[str, tuple]:
        """What the agents and gateway-sync last announced of each instance a container holds."""
        return {i.container_id: (i.state, i.seq, i.endpoints.address) for i in self.fleet.values()
                if i.state is not None and i.state is not ev.InstanceState.STOPPED}

    def routable(self) -> List[str]:
        return sorted(i.endpoints.address for i in self.fleet.values() if i.state is ev.InstanceState.READY)
