"""The M/M/c fleet model behind `tarn simulate --model queue` and bench/autoscale: Erlang C
against known values, the queue's growth and drain, and the telemetry it feeds the policy."""
from __future__ import annotations

import heapq
import math
import random
from fractions import Fraction

import pytest

from tarn_am.autoscale import AutoscaleConfig, QueueTimePolicy
from tarn_am.cli import simulate
from tarn_am.cli.queue_model import (InstanceQueue, QueueModel, QueueParams, QueueingFleet, erlang_c,
                                     stationary)
from tarn_am.cli.sim_trace import parse_trace
from tarn_node_agent.telemetry import normalized_load
from tarn_shared.events import GpuSample, ModelSample

CONFIG = AutoscaleConfig(min_instances=2, max_instances=8, cooldown_s=120)
PARAMS = QueueParams()  # M/M/2, 50 ms: 40 requests/s per instance


@pytest.mark.parametrize("servers, offered, expected", [
    (1, 0.5, 0.5),  # M/M/1: an arrival waits with probability rho
    (2, 1.0, 1 / 3),
    (3, 2.0, 4 / 9),  # Gross & Harris: lambda 6, mu 3
    (11, 10.0, 0.6821),  # the call-centre textbook case: 10 Erlangs on 11 agents
])
def test_erlang_c_matches_known_values(servers, offered, expected):
    assert erlang_c(servers, offered) == pytest.approx(expected, abs=5e-5)


def _erlang_c_by_the_sum(servers: int, offered: Fraction) -> Fraction:
    """The textbook closed form, exactly: a^c/c! · c/(c−a) over the sum of a^k/k! plus that."""
    top = offered ** servers / math.factorial(servers) * servers / (servers - offered)
    return top / (sum(offered ** k / math.factorial(k) for k in range(servers)) + top)


@pytest.mark.parametrize("servers", [1, 2, 4, 8, 16, 40])
@pytest.mark.parametrize("rho", ["1/10", "1/2", "4/5", "99/100"])
def test_erlang_c_recursion_agrees_with_the_exact_sum(servers, rho):
    offered = Fraction(rho) * servers
    assert erlang_c(servers, float(offered)) == pytest.approx(float(_erlang_c_by_the_sum(servers, offered)),
                                                              rel=1e-9)


def test_stationary_mmc_figures_match_the_textbook():
    s = stationary(3, 6.0, 3.0)  # Lq = 8/9, Wq = Lq / lambda, rho = 2/3
    assert s.queue_length == pytest.approx(8 / 9)
    assert s.wait_s == pytest.approx(8 / 9 / 6)
    assert s.utilization == pytest.approx(2 / 3)
    mm1 = stationary(1, 8.0, 10.0)  # M/M/1: Wq = rho / (mu - lambda)
    assert mm1.wait_s == pytest.approx(0.8 / 2.0)


@pytest.mark.parametrize("servers, offered", [(0, 1.0), (2, -1.0)])
def test_erlang_c_rejects_impossible_queues(servers, offered):
    with pytest.raises(ValueError):
        erlang_c(servers, offered)


def test_an_unstable_queue_has_no_stationary_state():
    with pytest.raises(ValueError, match="unstable"):
        stationary(2, 40.0, 20.0)


@pytest.mark.parametrize("params", [PARAMS, QueueParams(target_gpu_pct=None), QueueParams(servers=1),
                                    QueueParams(servers=8, service_s=0.4)])
def test_one_unit_of_trace_load_puts_an_instance_at_scale_up(params):
    rate = params.rate_at(CONFIG.scale_up)
    assert 0 < rate < params.capacity
    assert params.stationary_figure(rate) == pytest.approx(CONFIG.scale_up, abs=2e-4)
    assert params.stationary_figure(rate * 1.01) > CONFIG.scale_up


def test_the_load_figure_is_the_node_agents():
    rng = random.Random(1)
    for _ in range(200):
        queue_s, pending, utilization = rng.uniform(0, 0.3), rng.uniform(0, 20), rng.uniform(0, 1)
        agent = normalized_load([ModelSample(name="m", request_rate_per_s=10.0, queue_time_per_request_us=queue_s * 1e6,
                                             pending_requests=pending)],
                                [GpuSample(index=0, utilization_pct=utilization * 100, memory_used_bytes=0,
                                           memory_total_bytes=1)],
                                target_queue_time_us=100_000, target_pending_requests=8, target_gpu_utilization_pct=90)
        assert PARAMS.figure(queue_s, pending, utilization) == pytest.approx(agent, abs=1e-4)


def test_an_overloaded_queue_grows_by_the_excess_and_drains_at_the_spare_capacity():
    q = InstanceQueue("i0").settled(PARAMS, 20.0)
    for _ in range(10):
        q = q.advance(PARAMS, 60.0, 1.0)  # 20/s above the capacity of 40/s
    assert q.queued == pytest.approx(stationary(2, 20.0, 20.0).queue_length + 200)
    assert q.readings(PARAMS)[2] == 1.0  # all servers busy
    q = q.advance(PARAMS, 30.0, 1.0)  # 10/s spare
    assert q.readings(PARAMS)[2] == 1.0 and q.queued == pytest.approx(stationary(2, 20.0, 20.0).queue_length + 190)
    queue_s, pending, _ = q.readings(PARAMS)
    assert queue_s == pytest.approx(pending / 40.0)  # the backlog ahead of a request, served at capacity
    for _ in range(30):
        q = q.advance(PARAMS, 30.0, 1.0)
    settled = stationary(2, 30.0, 20.0)
    queue_s, pending, utilization = q.readings(PARAMS)
    assert pending == pytest.approx(settled.queue_length)
    assert queue_s == pytest.approx(settled.wait_s) and utilization == pytest.approx(0.75)


def test_the_fleet_reports_per_instance_telemetry_and_new_instances_start_empty():
    fleet = QueueingFleet(PARAMS, rate_per_load=28.8, count=2, load=1.8)
    observed = fleet.observe(0.0, 0.0, random.Random(0))
    assert [i.instance_id for i in observed.instances] == ["i0", "i1"]
    first = observed.instances[0]
    assert first.gpu_utilization_pct == pytest.approx(100 * 0.9 * 28.8 / 40)
    assert first.pending_requests == pytest.approx(stationary(2, 0.9 * 28.8, 20.0).queue_length)
    assert first.queue_time_per_request_us == pytest.approx(stationary(2, 0.9 * 28.8, 20.0).wait_s * 1e6)
    assert first.load == PARAMS.figure(first.queue_time_per_request_us / 1e6, first.pending_requests,
                                       first.gpu_utilization_pct / 100)
    fleet.join(1)
    newcomer = fleet.observe(1.0, 0.0, random.Random(0)).instances[-1]
    assert (newcomer.instance_id, newcomer.load, newcomer.pending_requests) == ("i2", 0.0, 0.0)
    fleet.advance(1.8, 1.0)  # its queue forms: what it served fell short of its arrivals by that much
    fleet.advance(1.8, 1.0)
    assert fleet.observe(2.0, 0.0, random.Random(0)).instances[-1].gpu_utilization_pct == pytest.approx(
        100 * 0.6 * 28.8 / 40)
    fleet.leave(1)
    assert fleet.size == 2


def test_without_a_gpu_reading_the_policy_sees_none_not_zero():
    fleet = QueueModel(QueueParams(target_gpu_pct=None)).start(CONFIG, 2, 1.8)
    assert all(i.gpu_utilization_pct is None for i in fleet.observe(0.0, 0.0, random.Random(0)).instances)


STEP = parse_trace("t_s,load\n0,1.8\n603,7.2\n1800,7.2\n", "step")


def test_instances_serve_only_after_the_start_up_delay_and_the_backlog_outlasts_it():
    result = simulate.simulate(QueueTimePolicy(CONFIG), CONFIG, STEP, startup_s=60, model=QueueModel())
    t_request = next(t for t, a in zip(result.times_s, result.allocated) if a == 8)
    t_serve = next(t for t, s in zip(result.times_s, result.serving) if s == 8)
    assert t_request - 603 <= CONFIG.telemetry_interval_s
    assert t_serve - t_request == 60
    over = [t for t, o in zip(result.times_s, result.over) if o]
    # 62 s at 7.2 units on 2 instances queues ~3,950 requests each; 8 instances drain them at
    # 14 requests/s of spare capacity each: ~280 s more.
    assert over[0] == 604 and 250 <= over[-1] - t_serve <= 320
    assert result.overloaded_s == len(over)
    linear = simulate.simulate(QueueTimePolicy(CONFIG), CONFIG, STEP, startup_s=60)
    assert linear.overloaded_s == t_serve - 603 < result.overloaded_s


def test_a_queue_trace_is_deterministic_with_noise():
    a = simulate.compare(CONFIG, STEP, startup_s=60, noise=0.05, seed=3, model=QueueModel())
    b = simulate.compare(CONFIG, STEP, startup_s=60, noise=0.05, seed=3, model=QueueModel())
    assert [r.allocated for r in a] == [r.allocated for r in b] and [r.figure for r in a] == [r.figure for r in b]


@pytest.mark.parametrize("kwargs, message", [
    ({"servers": 0}, "servers must be at least 1"),
    ({"service_s": 0}, "must be positive"),
    ({"target_gpu_pct": 120}, "target GPU utilization"),
])
def test_bad_queue_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QueueParams(**kwargs)


def _fifo_starts(arrivals, servers, service_rate, rng):
    """A sample path of FIFO M/M/c: each arrival starts on the first server to free up."""
    free, starts = [0.0] * servers, []
    for a in arrivals:
        start = max(a, heapq.heappop(free))
        starts.append(start)
        heapq.heappush(free, start + rng.expovariate(service_rate))
    return starts


def _poisson(rate_at, until, rng):
    t, out = 0.0, []
    while (t := t + rng.expovariate(rate_at(t))) < until:
        out.append(t)
    return out


def test_a_discrete_event_simulation_agrees_with_the_stationary_queue():
    rng = random.Random(1)
    arrivals = _poisson(lambda t: 28.8, 3000, rng)
    waits = [s - a for a, s in zip(arrivals, _fifo_starts(arrivals, 2, 20.0, rng))][5000:]
    assert sum(waits) / len(waits) == pytest.approx(stationary(2, 28.8, 20.0).wait_s, rel=0.05)


def test_a_discrete_event_simulation_agrees_with_the_backlog_and_drains_later():
    """10 s at 60/s on 40/s of capacity, then 30/s: the backlog and its queue time match a
    sample-path simulation; the fluid drain ends sooner than the simulated one (a known limit)."""
    rng = random.Random(2)
    at_peak, waits, after_drain = [], [], []
    for _ in range(60):
        arrivals = _poisson(lambda t: 20.0 if t < 100 else 60.0 if t < 110 else 30.0, 131, rng)
        starts = _fifo_starts(arrivals, 2, 20.0, rng)
        at_peak.append(sum(1 for a, s in zip(arrivals, starts) if a <= 110 < s))
        after_drain.append(sum(1 for a, s in zip(arrivals, starts) if a <= 130 < s))
        waits += [s - a for a, s in zip(arrivals, starts) if 109.5 <= a < 110.5]
    q = InstanceQueue("i0").settled(PARAMS, 20.0)
    for _ in range(10):
        q = q.advance(PARAMS, 60.0, 1.0)
    assert q.queued == pytest.approx(sum(at_peak) / len(at_peak), rel=0.05)
    assert q.readings(PARAMS)[0] == pytest.approx(sum(waits) / len(waits), rel=0.05)
    for _ in range(20):
        q = q.advance(PARAMS, 30.0, 1.0)
    assert q.queued == pytest.approx(stationary(2, 30.0, 20.0).queue_length)
    assert q.queued < sum(after_drain) / len(after_drain) < 40
