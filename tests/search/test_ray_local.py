"""Ray plumbing (archlab.search.ray_local, tests.search.raycluster): a local Ray listens on loopback only; a
real 2-node loopback cluster runs Tune trials on both nodes, refuses a wrong or missing token, and stops without
touching other processes on the machine."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from archlab.core.errors import ArchlabError
from archlab.search.ray_local import init_ray, shutdown_ray
from tests.search.raycluster import Listener, descendants, listening_sockets, local_cluster

pytestmark = pytest.mark.timeout(180)
needs_ss = pytest.mark.skipif(shutil.which("ss") is None, reason="`ss` (iproute2) lists listening sockets")


@pytest.fixture
def short_tmp():
    """A short temp dir: Ray's unix socket paths under it must stay under 108 bytes."""
    path = tempfile.mkdtemp(prefix="alr-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _ray_listeners(root: str) -> list[Listener]:
    """Listening sockets of this process (the driver) and of every Ray process started under `root`."""
    return listening_sockets(descendants([], mentioning=root.rstrip("/") + "/") | {os.getpid()})


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::ffff:127.0.0.1", True), ("::1", True),
                                            ("127.0.0.53%lo", True), ("*", False), ("0.0.0.0", False),
                                            ("::", False), ("192.0.2.2", False)])
def test_listener_loopback(host, loopback):
    assert Listener("tcp", host, 1, "x", 1).loopback is loopback


def test_bad_arguments_are_refused_before_ray_starts(short_tmp):
    with pytest.raises(ArchlabError, match="num_cpus and num_gpus size a local Ray only"):
        init_ray(address="127.0.0.1:6379", num_cpus=2)
    with pytest.raises(ArchlabError, match="at most 40"):
        init_ray(address=None, tmpdir="/tmp/" + "x" * 60)
    with pytest.raises(ArchlabError, match="n_nodes >= 1"):
        with local_cluster(0, tmpdir=short_tmp):
            pass


@needs_ss
def test_local_start_listens_on_loopback_only(short_tmp):
    import ray

    try:
        info = init_ray(address=None, num_cpus=1, tmpdir=short_tmp)
        assert ray.get(ray.remote(lambda: 1).remote()) == 1   # a worker process, with its own gRPC server
        listeners = _ray_listeners(short_tmp)
    finally:
        shutdown_ray()
    assert info["started_locally"] is True and info["resources"]["CPU"] == 1.0
    assert [n["ip"] for n in info["nodes"]] == ["127.0.0.1"]
    names = {lst.process for lst in listeners}
    # the GCS, the raylet (node manager and object manager), a worker and the driver itself all listen
    assert {"gcs_server", "raylet"} <= names and len(listeners) >= 5, listeners
    assert [lst for lst in listeners if not lst.loopback] == []


@needs_ss
def test_two_node_loopback_cluster_runs_trials_on_both_nodes(short_tmp):
    import ray
    from ray import tune

    def trainable(config):
        time.sleep(0.5)     # overlap: with one CPU per node, concurrent trials must use both nodes
        tune.report({"node": ray.get_runtime_context().get_node_id()})

    root = os.path.join(short_tmp, "c")
    # A bystander that looks like another Ray's raylet, in a temp dir whose name starts with ours: stopping
    # the cluster must not touch it (`ray stop` would kill by name; a bare prefix match would catch it).
    bystander = subprocess.Popen([f"raylet --temp_dir={root}b/session_1", "120"], executable=shutil.which("sleep"),
                                 start_new_session=True)
    try:
        with local_cluster(2, 1, tmpdir=root) as address:
            assert os.environ["RAY_AUTH_MODE"] == "token"
            try:
                info = init_ray(address=address)
                listeners = _ray_listeners(root)
                results = tune.Tuner(
                    tune.with_resources(trainable, {"cpu": 1}),
                    param_space={"i": tune.grid_search([0, 1, 2, 3])},
                    run_config=tune.RunConfig(storage_path=os.path.join(short_tmp, "tune"), verbose=0)).fit()
            finally:
                shutdown_ray()
            wrong_token = _gcs_answers(address, RAY_AUTH_TOKEN="0" * 64)
            no_auth = _gcs_answers(address, RAY_AUTH_MODE="disabled")
        assert descendants([], mentioning=root + "/") == set()     # the cluster is gone
        assert bystander.poll() is None                               # the bystander is not
    finally:
        bystander.kill()
        bystander.wait()

    nodes = {n["node_id"] for n in info["nodes"] if n["alive"]}
    assert info["started_locally"] is False and info["auth"] == "token" and len(nodes) == 2
    assert {n["ip"] for n in info["nodes"]} == {"127.0.0.1"} and info["resources"]["CPU"] == 2.0
    assert results.num_errors == 0 and len(results) == 4
    assert {r.metrics["node"] for r in results} == nodes
    assert sum(lst.process == "raylet" for lst in listeners) >= 4 and "gcs_server" in {x.process for x in listeners}
    assert [lst for lst in listeners if not lst.loopback] == []
    assert wrong_token == no_auth == "REFUSED AuthenticationError", (wrong_token, no_auth)


_GCS_PROBE = ("import sys\nfrom archlab.search.upstream import ray_alive_nodes\n"
              "try:\n    print('NODES', ray_alive_nodes(sys.argv[1], timeout_s=20))\n"
              "except Exception as err:\n    print('REFUSED', type(err).__name__)\n")


def _gcs_answers(address: str, **env: str) -> str:
    """What the GCS at `address` answers a fresh process with this environment (plus `env`)."""
    out = subprocess.run([sys.executable, "-c", _GCS_PROBE, address], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    return out.stdout.strip()
