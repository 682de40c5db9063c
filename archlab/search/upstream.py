"""Every reach into a library's private internals, in one place: Ray has no public way to do these.

Each reach names the upstream issue or the version it was checked against, and tests/search/test_upstream.py
pins the behaviour it relies on, so a Ray release that changes one fails there, not silently in a search.
Optuna needs none: the search uses its public ask/tell and storage API, and archlab.search.pareto computes
the hypervolume itself (Optuna 5.0 exposes its WFG only as `optuna._hypervolume`).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["RAY_CHECKED", "RAY_START_LAUNCHER", "SINGLE_MACHINE_ENV", "ray_address_from_environment",
           "ray_alive_nodes", "ray_auth_mode", "ray_reload_auth", "ray_single_machine_mode", "ray_temp_dir_args"]

RAY_CHECKED = "2.60.0"  # the Ray release every reach below was read against
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch for its single-machine mode

# `ray start` with Ray's rewrite of a loopback node IP to the outward IP turned off, so that
# `--node-ip-address 127.0.0.1` holds on a worker node too (Ray refuses worker nodes in single-machine mode).
# Reach: ray._private.services.resolve_ip_for_localhost (Ray 2.60); no bind-address option exists, see
# ray-project/ray#1677 ("Specifying which IP `ray start --head` listens on").
RAY_START_LAUNCHER = ("import sys\n"
                      "import ray._private.services as services\n"
                      "services.resolve_ip_for_localhost = lambda host: host\n"
                      "from ray.scripts.scripts import main\n"
                      "sys.argv[0] = 'ray'\n"
                      "main()\n")


@contextlib.contextmanager
def ray_single_machine_mode() -> Iterator[None]:
    """Ray's single-machine mode for the calls inside: node IP 127.0.0.1, loopback addresses kept as given.

    Reach: ray._private.ray_constants.ENABLE_RAY_CLUSTER, which Ray reads on every call (Ray 2.60; the mode
    it uses on macOS and Windows, ray-project/ray#18730). Every Ray gRPC server listens on loopback only when
    the node IP is exactly 127.0.0.1, and this mode is the only way a local start keeps that IP.
    """
    import ray._private.ray_constants as ray_constants

    saved_flag, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(SINGLE_MACHINE_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[SINGLE_MACHINE_ENV] = "0"   # for the Ray processes started inside
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_MACHINE_ENV, None)
        else:
            os.environ[SINGLE_MACHINE_ENV] = saved_env


def ray_reload_auth() -> None:
    """Make this process re-read RAY_AUTH_MODE and the token, which Ray caches after the first ray.init.

    Reach: ray._raylet.Config.initialize and AuthenticationTokenLoader.reset_cache (Ray 2.60 has no public
    way to change the auth settings of a process that has already connected once).
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def ray_auth_mode() -> str:
    """The connected Ray's authentication: "token" or "disabled" (reach: ray._raylet, Ray 2.60)."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return "token" if get_authentication_mode() == AuthenticationMode.TOKEN else "disabled"


def ray_address_from_environment(temp_dir: str | None) -> str | None:
    """What Ray's `address="auto"` resolves to (RAY_ADDRESS, else the cluster last started on this machine).

    Reach: ray._private.services.get_ray_address_from_environment (Ray 2.60): resolved before ray.init so
    that a loopback head is recognised and joined in single-machine mode.
    """
    from ray._private.services import get_ray_address_from_environment

    return get_ray_address_from_environment("auto", temp_dir)


def ray_temp_dir_args(temp_dir: str | None) -> dict[str, Any]:
    """ray.init keyword arguments choosing Ray's temp dir; ray.init names this one `_temp_dir` (Ray 2.60)."""
    return {} if temp_dir is None else {"_temp_dir": temp_dir}


def ray_alive_nodes(address: str, timeout_s: float = 5.0) -> int:
    """Alive nodes the GCS at `address` lists, asked without connecting a driver.

    Reach: ray._raylet.GcsClient (Ray 2.60); `ray.nodes()` needs a connected driver, and a test harness waits
    for its nodes before any driver joins.
    """
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    client = GcsClient(address=address)
    return len(client.get_all_node_info(timeout=timeout_s, state_filter=GcsNodeInfo.GcsNodeState.ALIVE))
