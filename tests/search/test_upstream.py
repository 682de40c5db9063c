"""Pins what archlab.search.upstream relies on in Ray's internals, so a Ray release that changes it fails here.

The reaches' end-to-end effect (every listening socket on loopback, a 2-node loopback cluster joined with a
token) is tested in test_ray_local.py; these tests check each internal piece on its own, without starting Ray.
"""
from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

from archlab.search import upstream

ARCHLAB = Path(upstream.__file__).parents[1]


def test_every_private_reach_lives_in_upstream_only():
    # `optuna._x`, `ray._x`, `._storage`, `._trial_id`, `._ot_study`...: attribute access to a private name of
    # another library, anywhere in the package but the one module that is allowed to
    private = re.compile(r"\b(?:optuna|ray|torch|timm|torchvision)\._[a-z]|\._(?:storage|trial_id|ot_\w+|"
                         r"completed_trials|raylet|private)\b")
    found = []
    for path in ARCHLAB.rglob("*.py"):
        if path.name == "upstream.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if private.search(line.split("#", 1)[0]):
                found.append(f"{path.relative_to(ARCHLAB.parent)}:{n}: {line.strip()}")
    assert found == []


def test_ray_version_is_the_one_the_reaches_were_read_against():
    # a different Ray is not necessarily broken, but every reach below must then be re-read: this test says so
    assert importlib.metadata.version("ray") == upstream.RAY_CHECKED


def test_single_machine_mode_keeps_the_node_ip_on_loopback(monkeypatch):
    import ray._private.ray_constants as ray_constants
    import ray._private.services as services

    monkeypatch.delenv(upstream.SINGLE_MACHINE_ENV, raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with upstream.ray_single_machine_mode():
        # Ray reads the flag on every call: this is what keeps a local start's servers on 127.0.0.1
        assert services.get_node_ip_address() == "127.0.0.1"
        assert os.environ[upstream.SINGLE_MACHINE_ENV] == "0"   # the processes Ray starts read the variable
    assert ray_constants.ENABLE_RAY_CLUSTER is before
    assert upstream.SINGLE_MACHINE_ENV not in os.environ
    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == upstream.SINGLE_MACHINE_ENV


def test_ray_start_rewrites_a_loopback_node_ip_through_the_function_the_launcher_replaces():
    import ray.scripts.scripts as scripts

    # `ray start` passes --node-ip-address through services.resolve_ip_for_localhost; the launcher replaces it
    assert "services.resolve_ip_for_localhost(node_ip_address)" in inspect.getsource(scripts.start.callback)
    probe = upstream.RAY_START_LAUNCHER.replace("from ray.scripts.scripts import main\n", "").replace(
        "main()\n", "print(services.resolve_ip_for_localhost('127.0.0.1'))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "127.0.0.1"
    assert callable(scripts.main)


def test_auth_settings_are_re_read_after_a_reload(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    upstream.ray_reload_auth()
    assert upstream.ray_auth_mode() == "disabled"
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    upstream.ray_reload_auth()
    assert upstream.ray_auth_mode() == "token"


def test_auto_address_resolves_ray_address_first(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "192.0.2.7:6379")
    assert upstream.ray_address_from_environment(None) == "192.0.2.7:6379"


def test_ray_init_still_takes_a_temp_dir_as_underscore_argument():
    import ray

    assert "``_temp_dir``" in (ray.init.__doc__ or "")
    assert upstream.ray_temp_dir_args(None) == {}
    assert upstream.ray_temp_dir_args("/tmp/x") == {"_temp_dir": "/tmp/x"}


def test_the_gcs_client_and_its_node_states_exist():
    # asking a GCS that is not there takes Ray 40 s to give up, so the call itself is exercised by
    # test_ray_local's cluster test (which waits for its nodes with it); here only the names it needs
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    assert GcsNodeInfo.GcsNodeState.ALIVE != GcsNodeInfo.GcsNodeState.DEAD
    assert isinstance(GcsClient, type)
