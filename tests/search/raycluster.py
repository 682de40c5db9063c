"""Test harness: a real multi-node Ray cluster on this machine, every node on 127.0.0.1, and the tools that
check it (process trees, listening sockets). Tests and bench/search_scaling.py use it; the search does not.

Each node is `ray start --node-ip-address 127.0.0.1` run through a launcher that turns off Ray's rewrite of a
loopback node IP (archlab.search.upstream.RAY_START_LAUNCHER), since Ray refuses worker nodes in its
single-machine mode.
"""
from __future__ import annotations

import contextlib
import ipaddress
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from archlab.core.errors import ArchlabError
from archlab.search.ray_local import LOOPBACK, check_tmpdir
from archlab.search.upstream import RAY_START_LAUNCHER, SINGLE_MACHINE_ENV, ray_alive_nodes, ray_reload_auth

__all__ = ["Listener", "descendants", "listening_sockets", "local_cluster"]


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
    alive = 0
    while time.monotonic() < deadline:
        alive = ray_alive_nodes(address)
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


def _fresh_token(root: str) -> dict[str, str]:
    """A new token file (mode 600) under `root`; the environment that makes Ray use it."""
    Path(root).mkdir(parents=True, exist_ok=True)
    token_file = Path(root) / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}


def _start_head(start: Callable[[list[str], str], tuple[subprocess.Popen, Path]], procs: list[subprocess.Popen],
                root: str, deadline: float) -> str:
    """Start the head node on a free port; its address."""
    for attempt in range(3):            # the free port can be taken between the probe and the bind
        port = _free_port()
        try:
            _wait_started(*start(["--head", f"--port={port}", "--include-dashboard=false"], "head"), deadline)
            return f"{LOOPBACK}:{port}"
        except RuntimeError:
            _stop(procs, root)
            procs.clear()
            if attempt == 2:
                raise
    raise AssertionError("unreachable: the third failed attempt raised")


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
    root = check_tmpdir(tmpdir) or tempfile.mkdtemp(prefix="archlab-ray-", dir="/tmp")
    auth = _fresh_token(root)
    saved = {k: os.environ.get(k) for k in (*auth, "RAY_AUTH_TOKEN")}
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", SINGLE_MACHINE_ENV)}
    env.update(auth, RAY_USAGE_STATS_ENABLED="0")
    common = ["--block", f"--node-ip-address={LOOPBACK}", f"--num-cpus={cpus_per_node}", f"--temp-dir={root}",
              f"--object-store-memory={object_store_mb * 2**20}", "--min-worker-port=0", "--max-worker-port=0",
              "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = Path(root) / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-c", RAY_START_LAUNCHER, "start", *args, *common], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        procs.append(proc)
        return proc, log

    try:
        os.environ.update(auth)
        os.environ.pop("RAY_AUTH_TOKEN", None)
        deadline = time.monotonic() + timeout_s
        address = _start_head(start, procs, root, deadline)
        for i in range(1, n_nodes):
            _wait_started(*start([f"--address={address}"], f"worker{i}"), deadline)
        ray_reload_auth()
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
