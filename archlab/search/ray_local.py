"""Ray for the search: a quiet local Ray bound to loopback, or joining a cluster (an address or RAY_ADDRESS).

Ray 2.60 has no bind-address setting. Each of its gRPC servers (GCS, raylet node manager and object
manager, every core worker, the driver) listens on 127.0.0.1 when the node's IP is exactly "127.0.0.1" and
on all interfaces otherwise (`listen_to_localhost_only = node_ip == "127.0.0.1"` in src/ray/gcs/gcs_server.cc;
the raylet and the core workers behave the same under `ss`); the runtime-env agent listens on the node IP.
But Ray rewrites a loopback node IP to the machine's outward IP, so `ray.init(_node_ip_address="127.0.0.1")`
still listens on `*:PORT`. A local start (`init_ray(address=None)`) therefore runs in Ray's own
single-machine mode, the one it uses on macOS and Windows, where the node IP stays 127.0.0.1; a driver
joining a cluster at a loopback address uses the same mode, so Ray does not rewrite the address. The reaches
into Ray's internals this takes live in archlab.search.upstream; tests/search/test_ray_local.py checks with
`ss` that every listening socket is on 127.0.0.1 (the multi-node test harness is tests/search/raycluster.py).
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError
from archlab.search.upstream import (
    ray_address_from_environment,
    ray_auth_mode,
    ray_reload_auth,
    ray_single_machine_mode,
    ray_temp_dir_args,
)

__all__ = ["LOOPBACK", "MAX_TMPDIR_CHARS", "check_tmpdir", "cluster_address", "describe_ray", "init_ray",
           "shutdown_ray"]

LOOPBACK = "127.0.0.1"
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
# Ray's longest unix socket path is <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store, 64
# characters after the temp dir; AF_UNIX paths end at 107 bytes.
MAX_TMPDIR_CHARS = 40


def check_tmpdir(tmpdir: str | os.PathLike[str] | None) -> str | None:
    """The temp dir as an absolute path, refused when Ray's socket paths under it would be too long."""
    if tmpdir is None:
        return None
    path = str(Path(tmpdir).absolute())
    if len(path) > MAX_TMPDIR_CHARS:
        raise ArchlabError(f"Ray temp dir {path!r} is {len(path)} characters long; Ray's unix socket paths "
                           f"under it need it to be at most {MAX_TMPDIR_CHARS} (use a short path such as "
                           "/tmp/archlab-ray-XXXX)")
    return path


def cluster_address(explicit: str | None, environ: dict[str, str] | None = None) -> tuple[str | None, str]:
    """The Ray cluster to join and where that choice came from, as Ray's own `ray.init()` decides it.

    An explicit address (--address or the study's execution.address) wins; else a non-empty RAY_ADDRESS (set
    by `ray job submit`, KubeRay and users) is joined; else (None, "local"): start a private local Ray.
    """
    environ = os.environ if environ is None else environ
    if explicit:
        return explicit, "address"
    if environ.get("RAY_ADDRESS", "").strip():
        return environ["RAY_ADDRESS"].strip(), "RAY_ADDRESS"
    return None, "local"


def _host(address: str) -> str:
    """The host part of HOST:PORT (brackets of an IPv6 literal removed)."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]")


def init_ray(*, address: str | None, num_cpus: float | None = None, num_gpus: float | None = None,
             tmpdir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Start a quiet local Ray bound to 127.0.0.1 (address None) or join the cluster at `address`; describe it.

    `address` is HOST:PORT of a cluster's head (GCS) or "auto" (RAY_ADDRESS, else the cluster last started on
    this machine). `num_cpus` and `num_gpus` size a local start only (None: Ray counts them). `tmpdir` is
    Ray's temp dir (at most 40 characters; None: RAY_TMPDIR or /tmp/ray). Authentication follows
    RAY_AUTH_MODE and RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH; a local start uses a token unless RAY_AUTH_MODE
    says otherwise. Returns `describe_ray()`, a JSON-ready dict for the run folder.
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; call shutdown_ray() first")
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise ArchlabError(f"num_cpus and num_gpus size a local Ray only; the cluster at {address!r} has its "
                           "own resources (set them with `ray start --num-cpus/--num-gpus` on its nodes)")
    temp_dir = check_tmpdir(tmpdir)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False, **ray_temp_dir_args(temp_dir))
    if address is None:
        # An explicit mode also keeps Ray's "token authentication is enabled by default" warning quiet.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        ray_reload_auth()
        with ray_single_machine_mode():
            # "local": start a new Ray even when RAY_ADDRESS names a running one
            ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **quiet)
        return describe_ray(local=True)
    ray_reload_auth()
    try:
        # "auto" is resolved here so that a loopback head is recognised below
        target = (ray_address_from_environment(temp_dir) or address) if address == "auto" else address
        with ray_single_machine_mode() if _host(target) in _LOOPBACK_NAMES else contextlib.nullcontext():
            ray.init(address=target, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ArchlabError(f"cannot join the Ray cluster at {address!r}: {err} (is `ray start --head` running "
                           "there, and do RAY_AUTH_MODE and the token match the cluster's?)") from err
    return describe_ray(local=False)


def describe_ray(*, local: bool | None = None) -> dict[str, Any]:
    """The connected Ray: version, head address, auth mode, nodes (id, IP, resources) and total resources."""
    import ray

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
            "address": ray.get_runtime_context().gcs_address, "auth": ray_auth_mode(),
            "nodes": nodes, "resources": plain(ray.cluster_resources())}


def shutdown_ray() -> None:
    """Disconnect from Ray; a Ray that init_ray started locally stops with it. Safe to call twice."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
