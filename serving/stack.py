"""Ray Serve's own configuration for a serving run (its "stack"), given to Ray's processes
through their runtime environments and Ray's system config, never through this process's
environment (a variable set here would outlive the run and leak into the next one).

- lean (the default): Serve's HAProxy front (HAProxy forwards to the ingress replica's own
  HTTP server: no Python proxy, no per-request call back to it for the body), Serve's
  throughput mode in the replicas, and less background work — controller loop 1 s, cached
  metrics exported every 2 s instead of 0.1 s, no autoscaling metrics on handles (nothing here
  autoscales), no Ray task events, no Ray metrics (nothing here reads them); a starting proxy
  is given 30 s to say it is ready (5 s as shipped). Measured by
  `benchmarks/serve_overhead.py` (results/VALIDATION.md).
  Its settings apply when Serve starts (on a cluster whose Serve already runs, `serve` is
  refused whatever the stack: `serving.server.ServeSession`).
  It binds the ingress replica's HTTP port on every interface (HAProxy's requirement).
- shipped: Serve as shipped (a Python HTTP proxy per node, controller loop 0.1 s); runs
  recorded before the stacks were named, or as "default" (its name until session 13), were
  served by it (`recorded_stack`).
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from simulator.errors import InputError

_LESS_METRICS = {
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "2000",
    "RAY_SERVE_COLLECT_AUTOSCALING_METRICS_ON_HANDLE": "0",
}
# Serve's throughput mode in the replicas: user code and the handles' router on the replica's
# own event loop (no thread hops per call), calls between deployments over gRPC, request-path
# logs buffered (ingress CPU per query 5.2 -> 3.5 ms, workers 6.0 -> 4.6 at 100 QPS, session
# 11); not in the driver, whose synchronous handles it breaks
_THROUGHPUT = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
_HAPROXY = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}  # read by the controller and the ingress replica
# the controller waits this long for HAProxy to notice a stopping ingress replica before it
# stops it (Serve's default, 30 s, made every lean run's shutdown 25 s longer; the ingress
# replica here stops only at the end of a run, when HAProxy is stopped too)
_INGRESS_DRAIN = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}
# the controller gives a starting proxy this long to answer that it is ready (Serve's default,
# 5 s, three misses and it is killed and restarted: on a busy 2-core host the HAProxy proxy
# took longer to start, again and again, and `serve.start` failed with ActorDiedError)
_PROXY_READY = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30"}


SERVE_SYSTEM_ACTORS = 3  # Serve's controller, its proxy and its fallback proxy


@dataclass(frozen=True)
class ServeStack:
    name: str
    controller_env: dict = field(default_factory=dict)  # Serve's controller and its proxies
    replica_env: dict = field(default_factory=dict)  # the ingress's and workers' replicas
    system_config: dict = field(default_factory=dict)  # a local Ray cluster the run starts
    # controller settings that are ports, each given a free one per run (HAProxy's own
    # listeners default to fixed ports, 9101 and 8404: a second run on the host failed)
    port_env: tuple[str, ...] = ()

    def local_ray_options(self, num_cpus: int, replicas: int = 0) -> dict:
        """`ray.init`'s arguments for a new local cluster of `num_cpus` CPUs serving on this
        stack (`address="local"`: not the cluster RAY_ADDRESS names, as Ray's default would
        join; no dashboard, no worker logs in this process: the runs record what they need).
        `replicas`: the Serve replicas the run starts at once; the raylet starts their worker
        processes side by side without its warning that more started than one per CPU (lines
        on the console of every 16-replica run; the deploy took as long: 21.8 and 24.1 s,
        against 23.6 s without it, here)."""
        starts = max(num_cpus, replicas + SERVE_SYSTEM_ACTORS)
        return {
            "address": "local",
            "num_cpus": num_cpus,
            "include_dashboard": False,
            "log_to_driver": False,
            # ray.init adds to it
            "_system_config": {"worker_maximum_startup_concurrency": starts, **self.system_config},
        }

    @contextlib.contextmanager
    def local_serve(self, num_cpus: int) -> Iterator[None]:
        """A local Ray cluster with Serve started on this stack, its HTTP front on a free port
        (not Serve's 8000, which a server of the host's, or a front still stopping, may hold),
        shut down on exit (the benchmarks' probes; `serving.server.ServeSession` serves a
        run)."""
        import ray
        from ray import serve

        ray.init(**self.local_ray_options(num_cpus))
        try:
            serve.start(
                http_options={"port": free_port()}, controller_options=self.controller_options()
            )
            yield
        finally:
            serve.shutdown()
            ray.shutdown()

    def controller_options(self) -> dict | None:
        """`serve.start(controller_options=...)` (None: Serve's defaults); `port_env`'s
        settings get free ports of this host."""
        if not self.controller_env:
            return None
        env = {**self.controller_env, **{k: str(free_port()) for k in self.port_env}}
        return {"runtime_env": {"env_vars": env}}

    def replica_options(self, actor_options: dict) -> dict:
        """`actor_options` (a replica's `ray_actor_options`) with this stack's environment."""
        if not self.replica_env:
            return dict(actor_options)
        return {**actor_options, "runtime_env": {"env_vars": dict(self.replica_env)}}


SERVE_STACKS = {
    "lean": ServeStack(
        "lean",
        controller_env={
            **_HAPROXY,
            **_INGRESS_DRAIN,
            **_PROXY_READY,
            "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "1",
            **_LESS_METRICS,
        },
        replica_env={**_HAPROXY, **_LESS_METRICS, **_THROUGHPUT},
        # Ray's metrics: each process's periodic export and the agent that takes it (Ray's
        # own CPU per query at 100 QPS 0.8 -> 0.5 ms, overhead p99 13.5-18.3 -> 10.6-14.7 ms in
        # alternated pairs, session 36)
        system_config={"task_events_report_interval_ms": 0, "enable_metrics_collection": False},
        port_env=("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT"),
    ),
    "shipped": ServeStack("shipped"),
}
DEFAULT_STACK = "lean"  # overhead p99 14-18 ms at 100 QPS here against 450+ for shipped
_RECORDED_NAMES = {None: "shipped", "default": "shipped"}  # before session 13


def recorded_stack(name: str | None) -> str:
    """The stack a run's record names (`config.json` serving.stack), by today's names."""
    return _RECORDED_NAMES.get(name, name)


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")  # Linux's
QUIET_PORTS_FROM = 20_000  # above Ray's workers' own (10002-19999 by default)
QUIET_PORT_TRIES = 50


def free_port() -> int:
    """A TCP port free on every interface now (HAProxy binds its listeners on all of them),
    for a listener that binds it seconds later. Taken below the kernel's ephemeral range where
    there is one: a port in that range can go meanwhile to any outgoing connection, and Ray's
    processes open many as they start (HAProxy once failed to bind its metrics port so)."""
    try:
        ephemeral_from = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_from = QUIET_PORTS_FROM
    draw = random.SystemRandom()  # not a result's seed: any free port serves
    for _ in range(QUIET_PORT_TRIES if ephemeral_from > QUIET_PORTS_FROM else 0):
        port = draw.randrange(QUIET_PORTS_FROM, ephemeral_from)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("", port))
            return port
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def serve_stack(name: str) -> ServeStack:
    """The stack called `name`; an unknown name is an input error."""
    try:
        return SERVE_STACKS[name]
    except KeyError:
        raise InputError(
            f"--serve-stack {name!r}: expected one of {', '.join(SERVE_STACKS)}"
        ) from None
