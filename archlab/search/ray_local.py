"""Ray plumbing for the search: a quiet local Ray bound to loopback, joining a cluster, and a real multi-node
Ray cluster on this machine for tests and benchmarks.

Ray 2.60 has no bind-address setting. Each of its gRPC servers (GCS, raylet node manager and object
manager, every core worker, the driver) listens on 127.0.0.1 when the node's IP is exactly "127.0.0.1" and
on all interfaces otherwise (`listen_to_localhost_only = node_ip == "127.0.0.1"` in src/ray/gcs/gcs_server.cc;
the raylet and the core workers behave the same under `ss`); the runtime-env agent listens on the node IP.
But Ray rewrites a loopback node IP to the machine's outward IP (`services.resolve_ip_for_localhost`), so
`ray.init(_node_ip_address="127.0.0.1")` and `ray start --node-ip-address 127.0.0.1` still listen on
`*:PORT`. What keeps the IP at 127.0.0.1:
  - a local start (`init_ray(address=None)`) runs in Ray's own single-machine mode, the one it uses on
    macOS and Windows (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`: `services.get_node_ip_address()` returns the
    loopback IP); the driver joining a cluster at a loopback address uses the same mode, so Ray does not
    rewrite the address;
  - `local_cluster` starts each node with `ray start --node-ip-address 127.0.0.1`, run through a
    two-line launcher that turns the rewrite off, since Ray refuses worker nodes in single-machine mode.
`tests/test_raycluster.py` checks with `ss` that every listening socket of both is on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError

__all__ = ["Listener", "describe_ray", "descendants", "init_ray", "listening_sockets", "local_cluster",
           "shutdown_ray"]

LOOPBACK = "127.0.0.1"
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's longest unix socket path is <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store, 64
# characters after the temp dir; AF_UNIX paths end at 107 bytes.
_MAX_TMPDIR_CHARS = 40
# `ray start` with Ray's rewrite of 127.0.0.1 to the outward IP turned off (see the module docstring).
_RAY_START = ("import sys\n"
              "import ray._private.services as services\n"
              "services.resolve_ip_for_localhost = lambda host: host\n"
              "from ray.scripts.scripts import main\n"
              "sys.argv[0] = 'ray'\n"
              "main()\n")


def _check_tmpdir(tmpdir: str | os.PathLike[str] | None) -> str | None:
    """The temp dir as an absolute path, refused when Ray's socket paths under it would be too long."""
    if tmpdir is None:
        return None
    path = str(Path(tmpdir).absolute())
    if len(path) > _MAX_TMPDIR_CHARS:
        raise ArchlabError(f"Ray temp dir {path!r} is {len(path)} characters long; Ray's unix socket paths "
                           f"under it need it to be at most {_MAX_TMPDIR_CHARS} (use a short path such as "
                           "/tmp/archlab-ray-XXXX)")
    return path


def _host(address: str) -> str:
    """The host part of HOST:PORT (brackets of an IPv6 literal removed)."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]")


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """Ray's single-machine mode for the calls inside: node IP 127.0.0.1, loopback addresses kept as given."""
    import ray._private.ray_constants as ray_constants  # Ray reads the flag from here on every call

    saved_flag, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_SINGLE_MACHINE_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_SINGLE_MACHINE_ENV] = "0"   # for the Ray processes started inside
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = saved_env


def _reload_auth() -> None:
    """Make this process re-read RAY_AUTH_MODE and the token: Ray caches both after the first ray.init."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def init_ray(*, address: str | None, num_cpus: float | None = None, num_gpus: float | None = None,
             tmpdir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Start a quiet local Ray bound to 127.0.0.1 (address None) or join the cluster at `address`; describe it.

    `address` is HOST:PORT of a cluster's head (GCS) or "auto" (the cluster last started on this machine).
    `num_cpus` and `num_gpus` size a local start only (None: Ray counts them). `tmpdir` is Ray's temp dir
    (at most 40 characters; None: RAY_TMPDIR or /tmp/ray). Authentication follows RAY_AUTH_MODE and
    RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH; a local start uses a token unless RAY_AUTH_MODE says otherwise.
    Returns `describe_ray()`, a JSON-ready dict for the run folder.
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; call shutdown_ray() first")
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise ArchlabError(f"num_cpus and num_gpus size a local Ray only; the cluster at {address!r} has its "
                           "own resources (set them with `ray start --num-cpus/--num-gpus` on its nodes)")
    temp_dir = _check_tmpdir(tmpdir)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
    if address is None:
        # An explicit mode also keeps Ray's "token authentication is enabled by default" warning quiet.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        _reload_auth()
        with _single_machine_mode():
            # "local": start a new Ray even when RAY_ADDRESS names a running one
            ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                     _temp_dir=temp_dir, **quiet)
        return describe_ray(local=True)
    _reload_auth()
    try:
        target = address
        if address == "auto":   # resolved here so that a loopback head is recognised below
            from ray._private.services import get_ray_address_from_environment

            target = get_ray_address_from_environment("auto", temp_dir) or address
        with _single_machine_mode() if _host(target) in _LOOPBACK_NAMES else contextlib.nullcontext():
            ray.init(address=target, _temp_dir=temp_dir, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ArchlabError(f"cannot join the Ray cluster at {address!r}: {err} (is `ray start --head` running "
                           "there, and do RAY_AUTH_MODE and the token match the cluster's?)") from err
    return describe_ray(local=False)


def describe_ray(*, local: bool | None = None) -> dict[str, Any]:
    """The connected Ray: version, head address, auth mode, nodes (id, IP, resources) and total resources."""
    import ray
    from ray._raylet import AuthenticationMode, get_authentication_mode

    def plain(resources: dict[str, float]) -> dict[str, float]:
        # "node:<ip>" entries repeat the node's IP; the rest (CPU, GPU, memory, accelerator types) is kept
        return {k: float(v) for k, v in sorted(resources.items()) if not k.startswith("node:")}

    nodes = []
    for n in ray.nodes():
        nodes.append({"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "hostname": n["NodeManagerHostname"],
                      "alive": bool(n["Alive"]), "head": "node:__internal_head__" in n["Resources"],
                      "resources": plain(n["Resources"])})
    nodes.sort(key=lambda n: (not n["head"], not n["alive"], n["node_id"]))
    return {"ray_version": ray.__version__, "started_locally": local,
            "address": ray.get_runtime_context().gcs_address,
            "auth": "token" if get_authentication_mode() == AuthenticationMode.TOKEN else "disabled",
            "nodes": nodes, "resources": plain(ray.cluster_resources())}


def shutdown_ray() -> None:
    """Disconnect from Ray; a Ray that init_ray started locally stops with it. Safe to call twice."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


# ---- processes and sockets -------------------------------------------------------------------------------

def _process_table() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command line) of every process on the machine, from `ps`."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,pgid=,args="], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            rows.append((int(parts[0]), int(parts[1]), int(parts[2]), parts[3] if len(parts) == 4 else ""))
    return rows


def descendants(roots: Iterable[int], *, mentioning: str | None = None, groups: Iterable[int] = ()) -> set[int]:
    """Live processes among `roots`, in process groups `groups` or naming `mentioning`, and their descendants."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in table:
        children.setdefault(ppid, []).append(pid)
    roots, groups = set(roots), set(groups)
    todo = [pid for pid, _, pgid, args in table
            if pid in roots or pgid in groups or (mentioning and mentioning in args)]
    found: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket: protocol, local host and port, and the owning process."""

    proto: str          # "tcp" or "udp"
    host: str           # "127.0.0.1", "::ffff:127.0.0.1", "*" (every interface), "0.0.0.0", ...
    port: int
    process: str
    pid: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it (127.0.0.0/8, ::1 or an IPv4-mapped loopback)."""
        try:
            ip = ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:          # "*": every interface
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback


_USERS = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


def listening_sockets(pids: Iterable[int] | None = None) -> list[Listener]:
    """Listening TCP and bound UDP sockets (of `pids` only, if given), from `ss` (Linux iproute2)."""
    if shutil.which("ss") is None:
        raise ArchlabError("`ss` (iproute2) is not installed; it lists the listening sockets")
    out = subprocess.run(["ss", "-H", "-l", "-t", "-u", "-n", "-p"], capture_output=True, text=True,
                         check=True).stdout
    wanted = None if pids is None else set(pids)
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        host, _, port = parts[4].rpartition(":")
        for name, pid in _USERS.findall(line):
            if wanted is None or int(pid) in wanted:
                found.append(Listener(parts[0], host.strip("[]"), int(port), name, int(pid)))
    return found


# ---- a real multi-node cluster on this machine -----------------------------------------------------------

def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _wait_started(proc: subprocess.Popen, log: Path, deadline: float) -> None:
    """Wait for `ray start --block` to print that its node is up; raise with the log's tail if it died."""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            tail = "\n".join(text.splitlines()[-15:])
            raise RuntimeError(f"`ray start` exited with code {proc.returncode}; {log}:\n{tail}")
        time.sleep(0.2)
    raise TimeoutError(f"`ray start` did not report its node up in time; see {log}")


def _wait_nodes(address: str, n_nodes: int, deadline: float) -> None:
    """Wait until the GCS at `address` lists `n_nodes` alive nodes."""
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    client = GcsClient(address=address)
    alive = 0
    while time.monotonic() < deadline:
        alive = len(client.get_all_node_info(timeout=5, state_filter=GcsNodeInfo.GcsNodeState.ALIVE))
        if alive >= n_nodes:
            return
        time.sleep(0.2)
    raise TimeoutError(f"only {alive} of {n_nodes} Ray nodes came up at {address}")


def _stop(procs: list[subprocess.Popen], tmpdir: str, grace_s: float = 15.0) -> None:
    """Stop the nodes started from `tmpdir`: SIGTERM to each `ray start`, then SIGKILL to what is left.

    Only our `ray start` processes, their process groups (each started its own session), processes naming
    `tmpdir` and their descendants are signalled; `ray stop` would stop every Ray on the machine.
    """
    for proc in reversed(procs):            # workers first, the head last
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    # tmpdir + "/": Ray's processes name session paths under it, and /tmp/a must not match /tmp/ab
    left = descendants([], mentioning=tmpdir.rstrip("/") + "/", groups=[p.pid for p in procs]) - {os.getpid()}
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def local_cluster(n_nodes: int = 2, cpus_per_node: int = 1, tmpdir: str | os.PathLike[str] | None = None, *,
                  object_store_mb: int = 128, timeout_s: float = 120.0) -> Iterator[str]:
    """A real `n_nodes`-node Ray cluster on this machine, every node on 127.0.0.1; yields the head address.

    Each node is a `ray start` process (`--head` first, then `--address`), on ports found free at run time,
    with token authentication on a fresh token. While the block runs, this process's RAY_AUTH_* variables
    point at that token, so `init_ray(address=...)` joins. On exit only this cluster's processes stop.
    `tmpdir` (at most 40 characters) is Ray's temp dir; None makes one under /tmp and removes it afterwards.
    """
    if n_nodes < 1 or cpus_per_node < 0:
        raise ArchlabError(f"local_cluster needs n_nodes >= 1 and cpus_per_node >= 0, got ({n_nodes}, "
                           f"{cpus_per_node})")
    made = tmpdir is None
    root = _check_tmpdir(tmpdir) or tempfile.mkdtemp(prefix="archlab-ray-", dir="/tmp")
    Path(root).mkdir(parents=True, exist_ok=True)
    token_file = Path(root) / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    saved = {k: os.environ.get(k) for k in (*auth, "RAY_AUTH_TOKEN")}
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", _SINGLE_MACHINE_ENV)}
    env.update(auth, RAY_USAGE_STATS_ENABLED="0")
    common = ["--block", f"--node-ip-address={LOOPBACK}", f"--num-cpus={cpus_per_node}", f"--temp-dir={root}",
              f"--object-store-memory={object_store_mb * 2**20}", "--min-worker-port=0", "--max-worker-port=0",
              "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = Path(root) / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-c", _RAY_START, "start", *args, *common], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        procs.append(proc)
        return proc, log

    try:
        os.environ.update(auth)
        os.environ.pop("RAY_AUTH_TOKEN", None)
        deadline = time.monotonic() + timeout_s
        for attempt in range(3):            # the free port can be taken between the probe and the bind
            port = _free_port()
            try:
                _wait_started(*start(["--head", f"--port={port}", "--include-dashboard=false"], "head"), deadline)
                break
            except RuntimeError:
                _stop(procs, root)
                procs.clear()
                if attempt == 2:
                    raise
        address = f"{LOOPBACK}:{port}"
        for i in range(1, n_nodes):
            _wait_started(*start([f"--address={address}"], f"worker{i}"), deadline)
        _reload_auth()
        _wait_nodes(address, n_nodes, deadline)
        yield address
    finally:
        _stop(procs, root)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if made:
            shutil.rmtree(root, ignore_errors=True)
