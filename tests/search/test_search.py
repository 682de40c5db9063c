"""The search engine end to end: CLI runs on digits, injected faults, kill -9 and resume, a 2-node cluster, and
the weights each keeps (keep_weights: front in the faulty run and the resume, all on the cluster, none in the
re-proposal run)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from archlab.search.pareto import pareto_mask
from archlab.search.results import load_table

STUDY = Path(__file__).parents[1] / "data" / "tiny_study.yaml"


def cli(*args: str, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archlab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture()
def ray_tmp(tmp_path_factory) -> str:
    path = f"/tmp/ar-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    os.makedirs(path, exist_ok=True)
    return path


def _optuna_study(run: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'optuna.db'}")


def _kept_weights(run: Path) -> set[int]:
    """Trials whose weights the run folder holds, from the files themselves."""
    return {int(p.parent.name) for p in (run / "trials").glob("*/weights.safetensors")}


def _val_top1(run: Path, number: int) -> float:
    """Validation top-1 of a kept trial's weights, loaded with strict=True into build_model(spec), measured on
    the split the trial was measured on (the study's dataset and seed, as the run folder recorded them)."""
    import torch

    from archlab.arch.resolve import resolve_spec
    from archlab.measure.data import load_data
    from archlab.nn.build import build_model
    from archlab.nn.weights import load_checkpoint
    from archlab.search.study import load_study
    study = load_study(run / "study.yaml")
    spec = resolve_spec(str(run / "trials" / f"{number:04d}" / "spec.yaml"))
    model = build_model(spec)
    model.load_state_dict(load_checkpoint(run / "trials" / f"{number:04d}" / "weights.safetensors"), strict=True)
    ds = study.dataset
    data = load_data(ds.name, img_size=ds.img_size, in_chans=spec.in_chans, root=ds.root,
                     val_fraction=ds.val_fraction, seed=study.seed, limit=ds.limit, val_limit=ds.val_limit)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1) * 255.0
    std = torch.tensor(data.std).view(1, -1, 1, 1) * 255.0
    with torch.inference_mode():
        pred = model.eval()((data.val.images.float() - mean) / std).argmax(1)
    return 100.0 * (pred == data.val.labels).sum().item() / len(data.val.labels)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One CLI search with injected faults, shared by the tests that read a finished run."""
    run = tmp_path_factory.mktemp("faulty") / "run"
    ray_tmp = f"/tmp/ar-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    os.makedirs(ray_tmp, exist_ok=True)
    proc = cli("search", str(STUDY), "--trials", "5", "--out", str(run),
               env={"RAY_TMPDIR": ray_tmp, "ARCHLAB_INJECT_FAULTS": "1:raise,2:nan,3:die"})
    return run, proc


def test_search_end_to_end_with_injected_faults(faulty_run):
    run, proc = faulty_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout
    table = load_table(run)
    assert sorted(table["number"]) == [0, 1, 2, 3, 4]
    by_number = table.set_index("number")
    assert by_number.loc[1, "state"] == "failed" and "injected fault" in by_number.loc[1, "error"]
    assert by_number.loc[2, "state"] == "failed" and "diverged" in by_number.loc[2, "error"]
    # the worker of trial 3 died once: Ray retried it and the retry ran to the end
    assert (run / "logs" / "died-3").exists() and by_number.loc[3, "state"] in ("complete", "stopped")
    for number in (0, 3, 4):
        assert (run / "trials" / f"{number:04d}" / "spec.yaml").exists()
    complete = table[table["state"] == "complete"]
    assert len(complete) >= 1
    assert complete["latency_ms"].gt(0).all() and complete["top1"].between(0, 100).all()
    assert (complete["epochs_run"] > 0).all()
    # the front computed from the table is Optuna's own
    mask = pareto_mask(complete[["top1", "latency_ms"]].to_numpy(float), ["maximize", "minimize"])
    assert set(complete["number"][mask]) == {t.number for t in _optuna_study(run).best_trials}
    assert pd.read_csv(run / "trials.csv")["number"].tolist() == table["number"].tolist()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"]["failed"] == 2 and len(summary["front"]) == mask.sum()
    assert "Pareto front" in proc.stdout and str(run) in proc.stdout


def test_the_front_keeps_its_weights_and_they_reproduce_its_top1(faulty_run):
    run, proc = faulty_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = load_table(run).set_index("number")
    summary = json.loads((run / "summary.json").read_text())
    front = {r["number"] for r in summary["front"]}
    # keep_weights defaults to front: exactly the front's trials have weights, recorded in table and summary
    assert summary["keep_weights"] == "front" and front
    assert _kept_weights(run) == front == set(summary["weights_kept"])
    assert set(table.index[table["weights"].notna()]) == front
    for record in summary["front"]:
        assert record["weights"] == f"trials/{record['number']:04d}/weights.safetensors"
        assert _val_top1(run, record["number"]) == pytest.approx(table.loc[record["number"], "top1"], abs=1e-9)
    # Ray's checkpoint copies are settled (kept in trials/ or deleted); only complete trials reported one
    assert not list((run / "ray").rglob("checkpoint_*"))
    recorded = {t.number for t in _optuna_study(run).trials if "checkpoint" in t.user_attrs}
    assert front <= recorded <= set(table.index[table["state"] == "complete"])
    assert "weights of" in proc.stdout and f"archlab export {run}:" in proc.stdout


def test_the_report_links_the_front_weights(faulty_run, tmp_path):
    import re

    from archlab.report.writer import build_report, write_report
    run, _ = faulty_run
    front = _kept_weights(run)
    page = write_report([run], tmp_path / "reports" / "r.html").read_text()
    links = re.findall(r'<a href="([^"]+)">trials/(\d{4})/weights\.safetensors</a>', page)
    assert {int(n) for _, n in links} == front
    for href, n in links:   # relative to the report's folder, so they resolve from where it lies
        assert not href.startswith("/")
        assert (tmp_path / "reports" / href).resolve() == (run / "trials" / n / "weights.safetensors").resolve()
    # with no report location to be relative to, the link is the file's path
    doc = build_report([run]).doc
    table = next(s.body for s in doc.sections if s.id == "architectures")
    assert str((run / "trials").resolve()) in table


def test_optuna_names_the_objectives_in_its_own_plots(faulty_run):
    run, _ = faulty_run
    study = _optuna_study(run)
    assert study.metric_names == ["top1", "latency_ms"]
    figure = optuna.visualization.plot_pareto_front(study)
    assert (figure.layout.xaxis.title.text, figure.layout.yaxis.title.text) == ("top1", "latency_ms")


def test_optuna_dashboard_serves_a_finished_run(faulty_run):
    """optuna-dashboard on the run's storage, on a loopback port: its HTTP API gives the study back."""
    import socket
    import urllib.request

    run, _ = faulty_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(dashboard), f"sqlite:///{run / 'optuna.db'}", "--host", "127.0.0.1",
                               "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline and server.poll() is None:
            try:
                studies = get("/api/studies")["study_summaries"]
            except OSError:   # not listening yet
                time.sleep(0.3)
        assert studies is not None, "optuna-dashboard did not answer within 60 s"
        assert [(s["study_name"], s["directions"]) for s in studies] == [("tiny", ["maximize", "minimize"])]
        detail = get(f"/api/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert detail["objective_names"] == ["top1", "latency_ms"]
    ours = _optuna_study(run)
    assert len(detail["trials"]) == len(ours.trials)
    complete = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert {t["number"] for t in complete} == {t.number for t in ours.trials if t.state.name == "COMPLETE"}


def test_killed_search_resumes_without_losing_or_rerunning_trials(tmp_path, ray_tmp):
    run = tmp_path / "run"
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    driver = subprocess.Popen([sys.executable, "-m", "archlab.cli", "search", str(STUDY), "--trials", "4",
                               "--out", str(run), "--quiet"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    finished: pd.DataFrame | None = None
    while time.time() < deadline:
        if (run / "trials.csv").exists():
            finished = pd.read_csv(run / "trials.csv")
            if len(finished) >= 1:
                break
        time.sleep(0.5)
    assert finished is not None and len(finished) >= 1, "no trial finished before the deadline"
    os.killpg(driver.pid, signal.SIGKILL)  # kill -9 of the whole process group, Ray included
    driver.wait()
    before = _optuna_study(run)
    done_before = {t.number: t.user_attrs.get("archlab_state") for t in before.trials
                   if t.state != optuna.trial.TrialState.RUNNING}
    running = [t for t in before.trials if t.state == optuna.trial.TrialState.RUNNING]
    # a trial whose ask the kill interrupted never reached Ray (no spec written): it is marked, not re-run
    started = {t.number for t in running if (run / "trials" / f"{t.number:04d}" / "spec.yaml").exists()}

    proc = cli("search", str(STUDY), "--trials", "4", "--out", str(run), "--resume", env={"RAY_TMPDIR": ray_tmp})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = load_table(run)
    finished_states = ("complete", "stopped", "skipped", "failed")
    assert table["state"].isin(finished_states).sum() == 4  # the target, counting every outcome once
    for number, state in done_before.items():  # nothing finished before the kill was re-run or changed
        assert table.set_index("number").loc[number, "state"] == state
    after = _optuna_study(run)
    rerun = 0
    for t in running:  # what was running is marked interrupted; its parameters run again while the target allows
        assert after.trials[t.number].user_attrs["archlab_state"] == "interrupted"
        rerun += t.number in started and any(
            u.params == t.params and u.user_attrs.get("archlab_state") in finished_states
            for u in after.trials[t.number + 1:])
    real_before = sum(s in finished_states for s in done_before.values())
    assert rerun == min(len(started), 4 - real_before)
    assert len(set(table["number"])) == len(table)
    # the weights are settled on resume too: the final front's, whichever session trained them
    front = {r["number"] for r in json.loads((run / "summary.json").read_text())["front"]}
    assert _kept_weights(run) == front and not list((run / "ray").rglob("checkpoint_*"))


def test_study_file_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(STUDY.read_text().replace("objectives:", "objectivs:")
                   .replace("tiny_space.yaml", str(STUDY.parent / "tiny_space.yaml")))
    proc = cli("search", str(bad), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if text.startswith("objectivs:"))
    assert f"{bad}:{line}: objectivs is not a known key (did you mean 'objectives'?)" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing is started for a bad file
    proc = cli("search", str(STUDY), "--resume")
    assert proc.returncode == 2 and "--resume needs --out" in proc.stderr


def test_search_on_a_two_node_cluster(tmp_path):
    """A real 2-node Ray cluster on loopback, named by RAY_ADDRESS only (as `ray job submit` and KubeRay do):
    the search joins it instead of starting a private Ray, its trials land on both nodes, --json prints the
    summary alone on stdout, and (keep_weights: all) every complete trial's weights reach the run folder through
    Ray Tune's checkpoints, whichever node trained them."""
    from tests.search.raycluster import local_cluster
    run = tmp_path / "run"
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.read_text().replace("tiny_space.yaml", str(STUDY.parent / "tiny_space.yaml"))
                     + "keep_weights: all\n")
    with local_cluster(n_nodes=2, cpus_per_node=1) as address:
        proc = cli("search", str(study), "--trials", "4", "--out", str(run), "--json", env={"RAY_ADDRESS": address})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)   # stdout is the JSON document and nothing else
    assert "archlab search: study 'tiny'" in proc.stderr   # progress went to stderr
    table = load_table(run)
    assert summary["trials_run"] == 4 == len(table) and summary["run_dir"] == str(run)
    assert summary["counts"] == {k: int(v) for k, v in table["state"].value_counts().items()}
    assert table["node_id"].nunique() == 2, table[["number", "node_id"]]
    state = json.loads((run / "state.json").read_text())
    ray_info = state["ray"][0]
    assert len(ray_info["nodes"]) == 2 and ray_info["started_locally"] is False
    assert ray_info["joined_via"] == "RAY_ADDRESS" and ray_info["address"] == address
    complete = table[table["state"] == "complete"]
    assert len(complete) >= 1 and summary["keep_weights"] == "all"
    assert _kept_weights(run) == set(complete["number"]) == set(summary["weights_kept"])
    for _, row in complete.iterrows():   # each node's trials: the file is the trial's own weights
        assert _val_top1(run, int(row["number"])) == pytest.approx(row["top1"], abs=1e-9), row["node_id"]
    assert not list((run / "ray").rglob("checkpoint_*"))


@pytest.mark.parametrize("sampler", ["nsga2", "motpe", "random", "nsga3", "QMCSampler"])
def test_every_sampler_is_seeded_by_the_study(sampler):
    # Optuna wraps some samplers' __init__; a seed check on the code object once left TPE unseeded
    from archlab.search.engine import make_sampler
    from archlab.search.study import Study

    def asked(seed: int) -> list[float]:
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=make_sampler(Study(name="s", space=Path("unused.yaml"), sampler=sampler,
                                                                     seed=seed)))
        values = []
        for _ in range(12):
            trial = study.ask()
            x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 0, 9)
            values.append(x + y)
            study.tell(trial, (x, y))
        return values

    assert asked(3) == asked(3)
    assert asked(3) != asked(4)


def test_reproposed_architectures_are_answered_not_retrained(tmp_path, ray_tmp):
    # a space of exactly 3 architectures searched for 4 trials by a seeded random sampler: the sampler re-proposes
    # tried ones (answered from the earlier trial, values included), and the 4th trial, with the space exhausted,
    # trains one again after MAX_DUPLICATES_IN_A_ROW re-proposals instead of looping forever
    space = (STUDY.parent / "tiny_space.yaml").read_text()
    space = space.replace("stem: {type: conv, width: [8, 16]", "stem: {type: conv, width: [8, 16, 24]")
    fixes = {"kernel_size: [3, 5]": "kernel_size: 3", "expand_ratio: [2, 4]": "expand_ratio: 2",
             "depth: {low: 1, high: 2}": "depth: 1", "width: [8, 16],": "width: 8,", "width: [16, 24],": "width: 16,",
             "head: {conv_width: [32, 64]}": "head: {conv_width: 32}"}
    for choice, fixed in fixes.items():
        assert choice in space
        space = space.replace(choice, fixed)
    (tmp_path / "space.yaml").write_text(space)
    study = (STUDY.read_text().replace("tiny_space.yaml", "space.yaml")
             .replace("name: nsga2, args: {population_size: 4}", "name: random")) + "keep_weights: none\n"
    (tmp_path / "study.yaml").write_text(study)
    run = tmp_path / "run"
    proc = cli("search", str(tmp_path / "study.yaml"), "--trials", "4", "--out", str(run),
               env={"RAY_TMPDIR": ray_tmp})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = load_table(run)
    assert len(table) == 4 and table["arch_id"].nunique() == 3
    trials = _optuna_study(run).get_trials()
    duplicates = [t for t in trials if t.user_attrs.get("archlab_state") == "duplicate"]
    assert len(duplicates) >= 50
    for dup in duplicates:
        earlier = trials[dup.user_attrs["duplicate_of"]]
        assert earlier.user_attrs["arch_id"] == dup.user_attrs["arch_id"]
        if dup.state == optuna.trial.TrialState.COMPLETE:  # else the earlier trial was pruned or still running
            assert earlier.state == dup.state and dup.values == earlier.values
    summary = json.loads((run / "summary.json").read_text())
    assert summary["duplicates_answered"] == len(duplicates)
    assert "not trained again" in proc.stdout
    # keep_weights: none: no trial saved weights, none were kept, nothing is left in Ray's storage
    assert summary["keep_weights"] == "none" and summary["weights_kept"] == [] and table["weights"].isna().all()
    assert not list(run.rglob("*.safetensors")) and not list(run.rglob("checkpoint_*"))
    assert not any("checkpoint" in t.user_attrs for t in trials)
