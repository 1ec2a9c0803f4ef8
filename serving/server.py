"""A serving run: a Ray cluster (local, or joined with `ray_address`), Serve's HTTP proxy, the
ingress application, one worker application per GPU slot (its initial plan's model loaded)
and the controller thread."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

from serving.setup import SERVE_LOGGING, ServeSetup
from serving.stack import serve_stack
from simulator.errors import InputError, RunFailure

CONNECT_TIMEOUT_S = 5.0  # for an answer at --ray-address (Ray itself retries for minutes)
RAY_CLIENT = "ray://"
PORT_WAIT_S = 10.0  # for --port to come free (the proxy of a run that just ended)
# a session's timed steps (`ServeSession.step_s`): Ray started or joined, Serve's controller and
# HTTP front up, the ingress and workers deployed with the initial plan (the controller
# thread running); then Serve's drain and stop, Ray's stop
START_STEPS = ("ray", "serve", "deployments")
STOP_STEPS = ("serve stop", "ray stop")
TOKEN_HINT = (
    "a cluster with token authentication is joined with RAY_AUTH_MODE=token and its "
    "RAY_AUTH_TOKEN set"
)


def check_ray_address(address: str, source: str = "--ray-address") -> None:
    """An InputError, naming `source` (where the address came from), unless `address` is
    `auto` (the cluster this machine started last; Ray says so if none) or HOST:PORT (a head's
    GCS) or ray://HOST:PORT (Ray Client) where Ray answers the call a driver makes first
    (GetClusterId; Ray Client's PING) within CONNECT_TIMEOUT_S, on a channel set up as Ray's
    (RAY_USE_TLS, token authentication): a Ray driver pointed at nothing, at another server, or
    at a cluster that refuses it retries for minutes."""
    if address == "auto":
        return
    flag = f"{source} {address!r}"
    host, _, port = address.removeprefix(RAY_CLIENT).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{flag}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"{flag}: nothing answers at {host}:{port} ({reason})") from None
    problem = _ray_rpc_problem(f"{host}:{port}", address.startswith(RAY_CLIENT))
    if problem:
        raise InputError(f"{flag}: {problem}")


def _ray_rpc_problem(target: str, ray_client: bool) -> str | None:
    """Why Ray's first call to `target` fails (None: it succeeds), in a few words."""
    import grpc
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        ray_client_pb2,
        ray_client_pb2_grpc,
    )

    try:
        channel = init_grpc_channel(target)
    except (OSError, RuntimeError) as exc:  # RAY_USE_TLS without its certificates
        return f"cannot set up Ray's channel ({str(exc).strip().splitlines()[0]})"
    with channel:
        try:
            if ray_client:
                stub = ray_client_pb2_grpc.RayletDriverStub(channel)
                ping = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
                stub.ClusterInfo(ping, timeout=CONNECT_TIMEOUT_S)
            else:
                stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
                stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=CONNECT_TIMEOUT_S)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return f"the cluster at {target} refuses this driver ({TOKEN_HINT})"
            if code == grpc.StatusCode.UNIMPLEMENTED:
                if ray_client:
                    return (
                        f"the gRPC server at {target} is not a Ray Client server (`ray start "
                        "--head --ray-client-server-port`, default 10001; a GCS is HOST:PORT)"
                    )
                return (
                    f"the gRPC server at {target} is not a Ray head's GCS (`ray start --head "
                    "--port`, default 6379; a Ray Client server is ray://HOST:PORT)"
                )
            detail = (exc.details() or code.name).strip().splitlines()[0]
            detail = detail.rpartition("last error: ")[2]  # past "failed to connect to all..."
            return f"what answers at {target} is not a Ray cluster ({detail})"
    return None


# what frees room for the run, by resource
ROOM_HINTS = {
    "CPU": "serve fewer workers, raise --num-cpus, or join a larger cluster (--ray-address)",
    "GPU": "serve fewer workers, or join a cluster with more GPUs (--ray-address)",
}


def check_cluster_room(
    worker_options: dict, n_workers: int, ingress_options: dict, available: dict
) -> None:
    """An InputError when the Ray cluster's free resources (`available`, as
    `ray.available_resources()`) cannot hold the ingress and `n_workers` workers, each asking
    for its `ray_actor_options`' CPUs and GPUs: Serve would wait for them without end (a real
    model's worker asks for a GPU of its own, so a machine without enough GPUs never serves)."""
    for resource, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        per_worker = float(worker_options.get(key, 0))
        need = n_workers * per_worker + float(ingress_options.get(key, 0))
        have = float(available.get(resource, 0.0))
        if need > have + 1e-9:
            raise InputError(
                f"--workers {n_workers}: the workers ({per_worker:g} {resource} each) and the "
                f"ingress need {need:g} {resource}, and the Ray cluster has {have:g} free "
                f"({ROOM_HINTS[resource]})"
            )


def ray_init_reason(exc: Exception) -> str:
    """`ray.init`'s error in one line: its first line and, where Ray Client's server sends its
    own traceback ("Initialization failure from server:" and the traceback), that traceback's
    last line, the server's reason."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def check_port_free(host: str, port: int, wait_s: float = PORT_WAIT_S) -> None:
    """An InputError when another server listens at host:port for `wait_s` (Serve's proxy would
    fail to start there, deep inside Ray; the wait lets the proxy of a serving run that just
    ended exit); a socket left in TIME_WAIT does not count. A port outside 1..65535 or a host
    that does not resolve is an InputError at once."""
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: expected a port in 1..65535")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
            return
        except socket.gaierror as exc:
            raise InputError(f"--host {host!r}: {exc.strerror}") from None
        except OSError as exc:
            if time.monotonic() >= deadline:
                reason = exc.strerror or type(exc).__name__
                raise InputError(
                    f"--port {port}: cannot serve at {host}:{port} ({reason})"
                ) from None
        time.sleep(0.2)


_sigterm_held = False  # inside `sigterm_deferred` (see there: the processes forked meanwhile)


def _own_group_taking_sigterm_in_child() -> None:
    if _sigterm_held:
        os.setpgid(0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


os.register_at_fork(after_in_child=_own_group_taking_sigterm_in_child)


@contextlib.contextmanager
def sigterm_deferred() -> Iterator[None]:
    """SIGTERM held back while Ray starts, then handled as before it started. `ray.init` puts
    in its own handlers (`sys.exit`, then its core's failure handler, which aborts the process
    and leaves Ray's processes running); this puts back the handler in force before, which then
    takes a SIGTERM that came meanwhile (the t2isim CLI's: KeyboardInterrupt, so the session
    shuts Serve and Ray down). A no-op outside the main thread.

    The processes forked meanwhile (Ray's raylet, GCS and monitors; Ray starts them with a
    `preexec_fn`, which runs the fork hooks) take SIGTERM, in a process group of their own. A
    signal mask is inherited across fork and exec: blocked, they and through the raylet every
    worker ignored `ray.shutdown`'s SIGTERM, which waits a second for each before it kills
    it (5 s per session). In this process's group, a SIGTERM to the group (a service
    manager's stop, a batch system's cancel) killed the raylet under the running session,
    whose shutdown then waited 30 s for Serve's controller."""
    global _sigterm_held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _sigterm_held = True
    try:
        yield
    finally:
        _sigterm_held = False
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


class ServeSession:
    """`with ServeSession(setup, port=...) as s:` serves at `s.url` until the block ends.
    Ray is started (and stopped) here unless this process already runs it: a local cluster
    (whatever RAY_ADDRESS says), or the cluster at `ray_address` joined."""

    def __init__(
        self,
        setup: ServeSetup,
        host: str = "127.0.0.1",
        port: int = 8000,
        ray_address: str | None = None,
        num_cpus: int | None = None,
        chaos_kill_s: float | None = None,
        ray_address_source: str = "--ray-address",
    ) -> None:
        self.setup = setup
        self.host = host
        self.port = port
        self.ray_address = ray_address
        self.ray_address_source = ray_address_source  # what names it in an error
        self.num_cpus = num_cpus
        self.chaos_kill_s = chaos_kill_s
        self.controller = None
        self.owns_ray = False
        self.serve_started = False  # this session started Serve (its shutdown is ours)
        # seconds each step took, in order (`START_STEPS`, then `STOP_STEPS`): where the
        # session's start and stop go (`benchmarks/serve_startup.py`)
        self.step_s: dict[str, float] = {}
        self._step_from = 0.0  # when the step being timed began (`perf_counter`)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServeSession:
        import ray
        from ray import serve

        from serving.controller import ControllerThread, LiveCluster
        from serving.ingress import INGRESS_ACTOR_OPTIONS, ingress_app
        from serving.workers import worker_actor_options

        bundle, policy, config = self.setup.build()  # input errors before Ray starts
        if self.num_cpus is not None and self.num_cpus < 1:
            raise InputError(f"--num-cpus {self.num_cpus}: expected at least 1")
        check_port_free(self.host, self.port)
        if self.ray_address is not None:
            if self.num_cpus is not None:
                raise InputError(
                    f"--num-cpus sizes a local Ray cluster; the one at {self.ray_address_source} "
                    f"{self.ray_address!r} has CPUs of its own"
                )
            check_ray_address(self.ray_address, self.ray_address_source)
        stack = serve_stack(self.setup.stack)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self.owns_ray = not ray.is_initialized()
        self._step_from = time.perf_counter()
        try:
            with sigterm_deferred():
                if not self.owns_ray:
                    pass
                elif self.ray_address is not None:
                    # Ray Client logs each ray.init keyword it forwards at INFO: not for users
                    with warnings_only("ray.client_builder"):
                        ray.init(address=self.ray_address, log_to_driver=False)
                else:
                    replicas = config.n_workers + 1  # and the ingress
                    ray.init(**stack.local_ray_options(self.num_cpus or os.cpu_count(), replicas))
        except BaseException as exc:  # Ray's failure to start or join, or ^C meanwhile
            if self.owns_ray:
                ray.shutdown()
            if isinstance(exc, Exception):
                raise self._ray_init_error(exc) from exc
            raise
        self._step("ray")
        try:
            if serve_is_running():  # its port and settings are its own; its apps not ours
                raise InputError(
                    "Serve already runs on this Ray cluster: its HTTP port and settings were "
                    "fixed when it started, and `serve` would shut it down, its applications "
                    "with it, when it stops; shut that Serve down first (`serve shutdown`)"
                )
            models = self.setup.models(bundle, policy, config)
            check_cluster_room(
                worker_actor_options(models),
                config.n_workers,
                INGRESS_ACTOR_OPTIONS,
                ray.available_resources(),
            )
            self.serve_started = True
            serve.start(
                http_options={"host": self.host, "port": self.port},
                logging_config=SERVE_LOGGING,
                controller_options=stack.controller_options(),
            )
            self._step("serve")
            # Serve logs each application's start at INFO (a line per worker slot)
            with warnings_only("ray.serve"):
                ingress = ingress_app(self.setup)
                cluster = LiveCluster(self.setup, bundle, policy, config, ingress, models)
                self.controller = ControllerThread(cluster, self.chaos_kill_s)
                self.controller.start()
            self._step("deployments")
        except BaseException as exc:  # a SIGTERM or ^C while Serve starts too
            self._shutdown()
            if isinstance(exc, Exception) and not isinstance(exc, InputError | RunFailure):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise RunFailure(f"Ray Serve did not start: {type(exc).__name__}: {first}") from exc
            raise
        return self

    def _ray_init_error(self, exc: Exception) -> InputError | RunFailure:
        """`ray.init`'s failure in one line: joining, no cluster for `auto` or not Ray at the
        address is the address's fault (InputError); anything else, such as a local raylet
        that never registered with its GCS (Ray waits 30 s), is the run's (RunFailure)."""
        reason = ray_init_reason(exc)
        failure = f"{type(exc).__name__}: {reason}"
        if self.ray_address is None:
            return RunFailure(f"the local Ray cluster did not start: {failure}")
        where = f"{self.ray_address_source} {self.ray_address!r}"
        if isinstance(exc, ConnectionError | ValueError):
            return InputError(f"{where}: {reason}")
        return RunFailure(f"{where}: Ray did not start: {failure}")

    def check(self) -> None:
        """Raise what the controller thread died of, if it did."""
        if self.controller is not None and self.controller.error is not None:
            raise self.controller.error

    def __exit__(self, *exc) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        import ray
        from ray import serve

        self._step_from = time.perf_counter()
        if self.controller is not None:
            self.controller.close()
        if self.serve_started:
            serve.shutdown()
            self._step("serve stop")
        if self.owns_ray:
            ray.shutdown()
            self._step("ray stop")

    def _step(self, name: str) -> None:
        """Record in `step_s` the seconds since the last step began."""
        now = time.perf_counter()
        self.step_s[name] = now - self._step_from
        self._step_from = now

    def ready_text(self) -> str:
        """'18.7 s (ray 5.3, serve 4.4, deployments 7.9)': how long the start took."""
        steps = [(n, self.step_s[n]) for n in START_STEPS if n in self.step_s]
        parts = ", ".join(f"{n} {s:.1f}" for n, s in steps)
        return f"{sum(s for _, s in steps):.1f} s ({parts})"


@contextlib.contextmanager
def warnings_only(logger_name: str) -> Iterator[None]:
    """The logger `logger_name` shows warnings and errors only, inside the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def serve_is_running() -> bool:
    """Whether a Serve controller already runs on the connected Ray cluster."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True
