"""A study whose latency comes from a predictor file (latency: {predictor: FILE}) says so wherever latency is read:
the trials table, summary.json and `archlab search --json`, the end-of-run text and the HTML report; a study
that measures says nothing of the kind. A predictor for another space, device, input or classes, or a corrupt
one, is refused before anything runs: one message, exit 2."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from archlab.arch.resolve import resolve_spec
from archlab.cli.main import main
from archlab.estimators.latency_fit import fit_from_csv, load_space_file, sample_networks
from archlab.estimators.latency_model import load_predictor, predict_latency, write_predictor
from archlab.nn.complexity import complexity
from archlab.report.writer import write_report
from archlab.search.engine import SearchSummary, format_summary
from archlab.search.results import load_table
from archlab.search.study import load_study
from archlab.search.trial import _measure
from tests.report.fixtures import make_search_run

DATA = Path(__file__).resolve().parents[1] / "data"
SPACE = DATA / "tiny_space.yaml"
DEVICE = "pixel-4 big core"   # a device archlab never reaches: its latencies arrive as a CSV table
# the tiny study's input: digits at 16 px are 1x16x16 with 10 classes
INPUT = dict(img_size=16, in_chans=1, num_classes=10)


def _phone_predictor(folder: Path, *, space: Path = SPACE, **shape: int) -> Path:
    """A predictor fitted on a made-up device table (latency grows with MACs), as `predictor fit --from-csv` makes."""
    shape = {**INPUT, **shape}
    specs = sample_networks(load_space_file(space)[0], 8, seed=3, **shape)
    table = folder / "phone.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spec", "latency_ms", "device", "threads"])
        for s in specs:
            w.writerow([s.to_json(), 0.3 + complexity(s).macs / 2e5, DEVICE, 4])
    from archlab.estimators.latency_fit import FitOptions
    return write_predictor(folder / "phone.json", fit_from_csv(space, table, FitOptions(**shape)))


def _study(folder: Path, latency: dict, **changes) -> Path:
    """The tiny test study in `folder` (its space beside it) with this latency block."""
    data = yaml.safe_load((DATA / "tiny_study.yaml").read_text())
    data.update(latency=latency, **changes)
    (folder / "tiny_space.yaml").write_text(SPACE.read_text())
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def predicted_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One CLI search (2 short trials on digits) whose latency the phone predictor predicts; its --json summary."""
    folder = tmp_path_factory.mktemp("predicted")
    predictor = _phone_predictor(folder)
    study = _study(folder, {"predictor": "phone.json"}, budget={"epochs": 1},
                   dataset={"name": "digits", "img_size": 16, "val_fraction": 0.2, "limit": 400})
    run = folder / "run"
    ray_tmp = f"/tmp/ar-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    os.makedirs(ray_tmp, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "archlab.cli", "search", str(study), "--trials", "2", "--out",
                           str(run), "--json"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_TMPDIR": ray_tmp})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, predictor, json.loads(proc.stdout)


def test_a_predicted_search_says_predicted_in_its_table_summary_and_run_folder(predicted_run):
    run, predictor, summary = predicted_run
    lat = summary["latency"]
    assert lat["source"] == "predicted" and lat["predictor"] == str(predictor)
    assert (lat["device_name"], lat["threads"], lat["img_size"], lat["in_chans"]) == (DEVICE, 4, 16, 1)
    pred = load_predictor(predictor)
    assert lat["kind"] == pred.selected and lat["cv"]["n"] == 8
    assert json.loads((run / "summary.json").read_text())["latency"] == lat
    assert json.loads((run / "state.json").read_text())["latency"] == lat
    # the run folder keeps the predictor it ran with, and its study copy points at that copy
    assert (run / "latency_predictor.json").read_bytes() == predictor.read_bytes()
    assert yaml.safe_load((run / "study.yaml").read_text())["latency"] == {"predictor": "latency_predictor.json"}
    resumed = load_study(run / "study.yaml")   # what --resume reads: it passes the predictor checks on its own
    assert resumed.latency.predictor == str(run / "latency_predictor.json")
    table = load_table(run)
    timed = table[table["latency_ms"].notna()]
    assert len(timed) >= 1 and set(timed["latency_source"]) == {"predicted"}
    assert set(pd.read_csv(run / "trials.csv")["latency_source"].dropna()) == {"predicted"}
    for number, ms in zip(timed["number"], timed["latency_ms"]):   # each latency is the predictor's figure
        spec = resolve_spec(str(run / "trials" / f"{int(number):04d}" / "spec.yaml"))
        assert ms == pytest.approx(predict_latency(spec, predictor), rel=1e-12)
    assert not (run / "latency_cache.json").exists()   # nothing was timed


def test_the_end_of_run_text_names_the_predictor(predicted_run):
    run, predictor, summary = predicted_run
    names = {f.name for f in fields(SearchSummary)}
    kept = {k: v for k, v in summary.items() if k in names}
    text = format_summary(SearchSummary(**{**kept, "run_dir": Path(kept["run_dir"]),
                                           "study_file": Path(kept["study_file"]), "report": None}))
    line = next(x for x in text.splitlines() if x.startswith("latency predicted, not measured"))
    assert str(predictor) in line and DEVICE in line and "4 thread(s), batch 1, img size 16" in line
    assert "cross-validated on 8 networks" in line


def test_the_report_labels_the_latency_predicted(predicted_run, tmp_path):
    run, predictor, summary = predicted_run
    html = Path(summary["report"]).read_text()
    label = f"latency (predicted, {DEVICE}, phone.json; ms)"
    assert html.count(label) >= 3   # the front's axis, the best-latency card, the trials table's header
    assert "latency predicted, not measured: " + str(predictor) in html   # the run summary's line
    assert "Latency predictions" in html and "Latency measurements" not in html
    assert "Top-1 against predicted latency" in html
    # a measured run overlaid on it: only the predicted run is said to be predicted
    measured = make_search_run(tmp_path / "measured")
    both = write_report([run, measured], tmp_path / "both.html").read_text()
    assert f"latency (predicted in tiny, {DEVICE}, phone.json; ms)" in both


def test_a_measured_search_never_says_predicted(tmp_path):
    spec = sample_networks(load_space_file(SPACE)[0], 1, seed=1, **INPUT)[0]
    settings = SimpleNamespace(latency={"device": "cpu", "batch": 1, "threads": 1, "backend": "eager",
                                        "max_seconds": 0.1, "predictor": None}, run_dir=str(tmp_path))
    fields_ = _measure(spec, settings)
    assert fields_["latency_source"] == "measured" and fields_["latency_ms"] > 0
    run = make_search_run(tmp_path / "run")
    path = write_report([run], tmp_path / "report.html")
    assert "predicted" not in path.read_text().lower()


# --- a predictor that does not fit the study ---------------------------------------------------------------

def _refused(capsys, argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> Path:
    return _phone_predictor(tmp_path_factory.mktemp("phone"))


@pytest.mark.parametrize("command", ["validate", "search"])
def test_a_predictor_for_another_space_device_or_input_is_refused(phone, tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)   # where `archlab search` would make its default run folder (runs/)
    (tmp_path / "phone.json").write_bytes(phone.read_bytes())
    for latency, needles in [
        ({"device": "cpu", "predictor": "phone.json"},
         ["study.yaml:", "latency.device must be what the predictor was fitted with", DEVICE, "got 'cpu'"]),
        ({"threads": 2, "predictor": "phone.json"},
         ["latency.threads must be what the predictor was fitted with", "threads 4", "got 2"]),
    ]:
        _refused(capsys, [command, str(_study(tmp_path, latency))], *needles)
    # fitted on a wider space than the study's
    wider = tmp_path / "wider.yaml"
    wider.write_text(SPACE.read_text().replace("width: [8, 16]", "width: [8, 16, 32]"))
    (tmp_path / "wide.json").write_bytes(_phone_predictor(tmp_path, space=wider).read_bytes())
    _refused(capsys, [command, str(_study(tmp_path, {"predictor": "wide.json"}))],
             "latency.predictor must be a latency predictor for this study's space", "not on this space")
    # fitted for 32 px inputs; the study trains at 16
    (tmp_path / "big.json").write_bytes(_phone_predictor(tmp_path, img_size=32).read_bytes())
    _refused(capsys, [command, str(_study(tmp_path, {"predictor": "big.json"}))],
             "predicts for 1x32x32 inputs", "gives 1x16x16", "--img-size 16")
    # truncated
    (tmp_path / "cut.json").write_text(phone.read_text()[:300])
    _refused(capsys, [command, str(_study(tmp_path, {"predictor": "cut.json"}))],
             "cut.json", "not a readable latency predictor")
    assert not (tmp_path / "runs").exists()


def test_a_predictor_for_other_classes_is_refused_before_the_run_starts(tmp_path, capsys):
    _phone_predictor(tmp_path, num_classes=100)
    study = _study(tmp_path, {"predictor": "phone.json"})
    out = tmp_path / "run"
    _refused(capsys, ["search", str(study), "--out", str(out)], "latency.predictor", "fitted for 100 classes",
             "digits has 10", "--num-classes 10")
    assert not out.exists()
