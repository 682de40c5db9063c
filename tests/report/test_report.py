"""Reports: the data functions (fronts, hypervolume, importance, ladders), the HTML writer's escaping, the CLI."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from archlab.core.errors import ArchlabError
from archlab.report.data import (
    ablation_table,
    arch_info,
    axis_type,
    change_deltas,
    compare_fronts,
    detect_kind,
    hypervolume_curves,
    ladder_paths,
    load_ablation_run,
    load_search_run,
    parallel_dims,
    param_importance,
    run_labels,
    scatter_set,
    trial_rows,
)
from archlab.report.html import json_script
from archlab.report.writer import build_report, write_report
from archlab.search.pareto import hypervolume, pareto_mask
from archlab.search.results import front_table
from tests.report.fixtures import OUTCOMES, make_ablation_run, make_search_run, poison_names

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    return {"nsga2": make_search_run(base / "nsga2", sampler="nsga2", seed=0, n_trials=24),
            "random": make_search_run(base / "random", sampler="random", seed=1, n_trials=24),
            "ablation": make_ablation_run(base / "ablation", seeds=(0, 1))}


# --- reading -------------------------------------------------------------------------------------------

def test_detect_kind(runs: dict[str, Path], tmp_path: Path) -> None:
    assert detect_kind(runs["nsga2"]) == "search"
    assert detect_kind(runs["ablation"]) == "ablation"
    with pytest.raises(ArchlabError, match="not a run folder"):
        detect_kind(tmp_path)
    (tmp_path / "ladder.yaml").write_text("name: x\n")
    with pytest.raises(ArchlabError, match="without ablation.json"):
        detect_kind(tmp_path)
    with pytest.raises(ArchlabError, match="no such run folder"):
        detect_kind(tmp_path / "missing")


def test_load_search_run_reads_every_file(runs: dict[str, Path]) -> None:
    run = load_search_run(runs["nsga2"])
    assert run.name == "tiny_frontier" and run.sampler == "nsga2"
    assert run.metrics == ("top1", "latency_ms") and run.directions == ("maximize", "minimize")
    assert set(run.table["state"]) == {"complete", "stopped", "skipped", "failed"}
    assert len(run.archs) == len(run.table)            # every fixture trial wrote its spec
    assert run.state["ray"][0]["nodes"][1]["hostname"] == "worker-1"
    assert run.latency_env and run.latency_env[0]["measurements"] == len(run.table)


def test_objectives_come_from_the_study_while_a_search_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil
    folder = tmp_path / "running"
    shutil.copytree(runs["nsga2"], folder)
    (folder / "summary.json").unlink()   # written only at the end of a search
    text = (folder / "study.yaml").read_text().replace("- latency_ms", "- name: params\n  direction: minimize")
    (folder / "study.yaml").write_text(text)
    run = load_search_run(folder)
    assert run.metrics == ("top1", "params") and run.directions == ("maximize", "minimize")


def test_arch_info_summarises_and_survives_a_bad_spec(runs: dict[str, Path]) -> None:
    from archlab.arch.spec import load_spec
    from archlab.nn.complexity import complexity
    spec_file = runs["nsga2"] / "trials" / "0000" / "spec.yaml"
    info = arch_info(spec_file.read_text())
    spec = load_spec(spec_file)
    assert info.arch_id == spec.arch_id and info.params == complexity(spec).params
    assert len(info.rows) == len(spec.stages) + 2           # stem, stages, head
    assert sum(r["params"] for r in info.rows) == info.params
    assert info.summary.startswith("conv 3x3/1 16ch > MBConv")
    bad = arch_info("stem: {type: conv}\nstages: []\n", file="trials/0009/spec.yaml")
    assert bad.error.startswith("trials/0009/spec.yaml") and bad.rows == () and "stages" in bad.error


# --- fronts and hypervolume ----------------------------------------------------------------------------

def test_scatter_set_front_is_the_studys_front(runs: dict[str, Path]) -> None:
    run = load_search_run(runs["nsga2"])
    s = scatter_set(run.table, 0, "latency_ms")
    expected = front_table(run.table, run.metrics, run.directions)
    assert sorted(s.front["number"]) == sorted(expected["number"])
    done = run.table[run.table["state"] == "complete"]
    assert len(s.front) + len(s.dominated) == len(done)
    assert list(s.front["latency_ms"]) == sorted(s.front["latency_ms"])     # drawn left to right
    assert list(s.front["top1"]) == sorted(s.front["top1"])                 # a front: slower only if better
    stopped = [n for n, (state, _) in OUTCOMES.items() if state == "stopped"]
    assert sorted(s.stopped["number"]) == stopped                          # partial values kept apart
    assert not set(s.stopped["number"]) & (set(s.front["number"]) | set(s.dominated["number"]))


def test_scatter_set_on_another_plane_is_that_planes_front(runs: dict[str, Path]) -> None:
    run = load_search_run(runs["nsga2"])
    s = scatter_set(run.table, 0, "macs")
    done = run.table[run.table["state"] == "complete"]
    mask = pareto_mask(done[["top1", "macs"]].to_numpy(float), ["maximize", "minimize"])
    assert sorted(s.front["number"]) == sorted(done["number"][mask])


def test_hypervolume_curves_share_one_reference(runs: dict[str, Path]) -> None:
    a, b = load_search_run(runs["nsga2"]), load_search_run(runs["random"])
    curves = hypervolume_curves([a, b])
    assert [c.run for c in curves] == [0, 1]
    assert curves[0].reference == curves[1].reference
    pooled = pd.concat([r.table[r.table["state"] == "complete"] for r in (a, b)])
    ref = np.array(curves[0].reference)
    assert ref[0] < pooled["top1"].min() and ref[1] > pooled["latency_ms"].max()   # worse than every trial
    for run, c in zip((a, b), curves):
        assert all(x <= y + 1e-12 for x, y in zip(c.hypervolume, c.hypervolume[1:]))
        done = run.table[run.table["state"] == "complete"]
        final = hypervolume(done[["top1", "latency_ms"]].to_numpy(float), ["maximize", "minimize"],
                            ref * np.array([-1.0, 1.0]))
        assert c.hypervolume[-1] == pytest.approx(final)
        assert len(c.numbers) == len(done)


def test_compare_fronts_pools_runs(runs: dict[str, Path]) -> None:
    a, b = load_search_run(runs["nsga2"]), load_search_run(runs["random"])
    comp = compare_fronts([a, b])
    pooled = pd.concat([r.table[r.table["state"] == "complete"].assign(run=i) for i, r in enumerate((a, b))])
    mask = pareto_mask(pooled[["top1", "latency_ms"]].to_numpy(float), ["maximize", "minimize"])
    assert sorted(zip(comp.front["run"], comp.front["number"])) == \
        sorted(zip(pooled["run"][mask], pooled["number"][mask]))
    assert comp.per_run["in_pooled_front"].sum() == len(comp.front)
    assert list(comp.per_run["complete"]) == [len(a.table[a.table.state == "complete"])] * 2


def test_compare_fronts_finds_shared_architectures(runs: dict[str, Path], tmp_path: Path) -> None:
    a = load_search_run(runs["nsga2"])
    b = load_search_run(make_search_run(tmp_path / "copy", sampler="random", seed=0, n_trials=24))
    comp = compare_fronts([a, b])   # same seed: both runs trained the same architectures
    assert comp.shared and all(runs_ == [0, 1] for runs_ in comp.shared.values())
    assert run_labels([a, b]) == ["tiny_frontier (nsga2)", "tiny_frontier (random)"]


# --- importance, parallel coordinates, tables ---------------------------------------------------------------

def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 6, n)
    b = rng.uniform(0, 1, n)
    c = rng.choice(["relu", "gelu"], n)
    return pd.DataFrame({"number": range(n), "state": "complete", "params_a": a, "params_b": b, "params_c": c,
                         "params_d": rng.choice([True, False], n),
                         "top1": 80 + 2.0 * a + 0.01 * rng.normal(size=n),       # only a matters for top-1
                         "latency_ms": 1.0 + 3.0 * b + 0.01 * rng.normal(size=n)})  # only b for latency


def test_param_importance_finds_the_parameter_that_matters() -> None:
    imp = param_importance(_table(40), ("top1", "latency_ms"), ("maximize", "minimize"))
    assert imp.note == "" and imp.n_trials == 40
    assert max(imp.values["top1"], key=imp.values["top1"].get) == "a"
    assert max(imp.values["latency_ms"], key=imp.values["latency_ms"].get) == "b"
    assert sum(imp.values["top1"].values()) == pytest.approx(1.0)
    assert set(imp.values["top1"]) == {"a", "b", "c", "d"}       # int, float, categorical and bool columns


def test_param_importance_is_deterministic_and_explains_too_few_trials() -> None:
    t = _table(30)
    first = param_importance(t, ("top1", "latency_ms"), ("maximize", "minimize"))
    again = param_importance(t, ("top1", "latency_ms"), ("maximize", "minimize"))
    assert first.values == again.values
    few = param_importance(_table(3), ("top1", "latency_ms"), ("maximize", "minimize"))
    assert few.values == {} and "at least 4 complete trials" in few.note


def test_parallel_dims_codes_categories() -> None:
    t = _table(12)
    dims, numbers = parallel_dims(t, ("top1", "latency_ms"))
    by_label = {d.label: d for d in dims}
    assert numbers == list(range(12))
    assert by_label["c"].ticktext == ("gelu", "relu")
    assert [by_label["c"].ticktext[int(v)] for v in by_label["c"].values] == list(t["params_c"])
    assert by_label["a"].ticks == tuple(float(v) for v in sorted(set(t["params_a"])))
    assert by_label["b"].ticks == ()            # continuous: plotly's own ticks
    assert list(by_label["top-1 (%)"].values) == list(t["top1"])


def test_trial_rows_keep_failed_trials_and_their_reasons(runs: dict[str, Path]) -> None:
    run = load_search_run(runs["nsga2"])
    rows = trial_rows(run)
    assert len(rows) == len(run.table)
    failed = rows[rows["state"] == "failed"]
    assert set(failed["error"]) == {e for s, e in OUTCOMES.values() if s == "failed"}
    expected = set(front_table(run.table, run.metrics, run.directions)["number"])
    assert set(rows["number"][rows["on_front"]]) == expected
    assert rows["arch"].str.startswith("conv").all()


def test_axis_type() -> None:
    assert axis_type([1.0, 2.0, 3.0]) == "linear"
    assert axis_type([1e5, 1e7]) == "log"
    assert axis_type([0.0, 100.0]) == "linear"


# --- ablation --------------------------------------------------------------------------------------------

def test_ladder_paths_hang_branches_off_their_parent(runs: dict[str, Path]) -> None:
    run = load_ablation_run(runs["ablation"])
    paths = ladder_paths(run.steps)
    index = {s["step"]: int(s["index"]) for s in run.steps}
    assert index["kernel_5"] not in paths.main and index["kernel_7"] in paths.main
    assert (index["move_up_depthwise"], index["kernel_5"]) in paths.branches
    assert (index["kernel_7"], index["kernel_9"]) in paths.branches
    assert (index["kernel_7"], index["kernel_11"]) in paths.branches
    assert len(paths.main) + len(paths.branches) == len(run.steps)


def test_ablation_table_matches_ablation_json(runs: dict[str, Path]) -> None:
    run = load_ablation_run(runs["ablation"])
    t = ablation_table(run.steps)
    doc = json.loads((runs["ablation"] / "ablation.json").read_text())
    assert list(t["step"]) == [s["step"] for s in doc["steps"]]
    for row, s in zip(t.to_dict(orient="records"), doc["steps"]):
        assert row["gmacs"] == pytest.approx(s["macs"] / 1e9)
        if s["delta"] is None:
            assert pd.isna(row["delta"])
        else:
            assert row["delta"] == pytest.approx(s["delta"])
        assert row["n_seeds"] == 2
    deltas = change_deltas(run.steps)
    assert len(deltas) == len(run.steps) - 1 and "resnet50" not in set(deltas["step"])


def test_untrained_ablation_still_reports(tmp_path: Path) -> None:
    folder = make_ablation_run(tmp_path / "notrain", trained=False)
    t = ablation_table(load_ablation_run(folder).steps)
    assert t["top1_mean"].isna().all() and t["paper_top1"].notna().any()
    html = write_report([folder], tmp_path / "notrain.html").read_text()
    assert "Not trained" in html


# --- the page --------------------------------------------------------------------------------------------

def _data_block(html: str) -> str:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "no data block"
    return m.group(1)


def test_report_is_self_contained(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plotly.offline import get_plotlyjs
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHLAB_REPORTS_DIR", str(tmp_path / "elsewhere"))
    assert write_report([runs["random"]]) == tmp_path / "elsewhere" / "random.html"
    monkeypatch.delenv("ARCHLAB_REPORTS_DIR")
    path = write_report([runs["nsga2"]])
    assert path == Path("reports") / "nsga2.html"               # the default: reports/ under the current dir
    html = path.read_text()
    assert html.count(get_plotlyjs()) == 1                       # plotly.js inlined exactly once
    assert not re.search(r"<script[^>]*\bsrc=", html) and "<link" not in html   # nothing fetched
    data = json.loads(_data_block(html))
    assert {"fig-front", "fig-front-macs", "fig-front-params", "fig-hv", "fig-importance",
            "fig-parallel-0"} <= set(data["figures"])
    for fid in data["figures"]:
        assert f'id="{fid}"' in html
    trial = data["trials"][0]["3"]
    assert trial["state"] == "failed" and trial["error"] == "RuntimeError: injected fault"
    assert trial["arch"]["yaml"] == (runs["nsga2"] / "trials" / "0003" / "spec.yaml").read_text()


def test_several_runs_overlay(runs: dict[str, Path], tmp_path: Path) -> None:
    report = build_report([runs["nsga2"], runs["random"]])
    front = report.figures["fig-front"]
    names = [t.name for t in front.data]
    assert "tiny_frontier (nsga2) · front" in names and "tiny_frontier (random) · front" in names
    assert any(s.id == "architectures" for s in report.doc.sections)
    assert report.name == "nsga2_vs_random"
    html = write_report([runs["nsga2"], runs["random"], runs["ablation"]], tmp_path / "all.html").read_text()
    assert "ab0-fig-top1" in html and "fig-front" in html        # searches overlaid, the ablation after


@pytest.mark.parametrize("kind", ["search", "ablation"])
def test_user_strings_are_escaped(runs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    import shutil
    folder = tmp_path / kind
    shutil.copytree(runs["nsga2" if kind == "search" else "ablation"], folder)
    poison_names(folder, XSS)
    html = write_report([folder], tmp_path / f"{kind}.html").read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html           # shown as text
    block = _data_block(html)
    assert "<" not in block                                           # nothing can close the data block
    data = json.loads(block)
    if kind == "search":
        assert data["labels"] == [XSS]                                # the page script sets it as textContent
        assert data["trials"][0]["3"]["error"] == XSS
    raw_ticks = []
    for fig in data["figures"].values():
        for trace in fig["data"]:
            for dim in trace.get("dimensions", []) if trace.get("type") == "parcoords" else []:
                raw_ticks += dim.pop("ticktext", [])   # plotly draws these as plain text: raw on purpose
    figures = json.dumps(data["figures"], ensure_ascii=False)
    assert XSS not in figures and "&lt;script&gt;alert(1)&lt;/script&gt;" in figures   # plotly shows it as text
    assert (XSS in raw_ticks) == (kind == "search")


def test_json_script_cannot_be_closed_early() -> None:
    tag = json_script({"name": "</script><script>alert(1)</script><!--", "u": "\u2028"}, element_id="d")
    body = tag[len('<script type="application/json" id="d">'):-len("</script>")]
    assert "<" not in body and ">" not in body and "\u2028" not in body
    assert json.loads(body)["name"] == "</script><script>alert(1)</script><!--"


def test_all_failed_search_still_writes_a_report(tmp_path: Path) -> None:
    folder = make_search_run(tmp_path / "bad", n_trials=4)
    table = pd.read_parquet(folder / "trials.parquet")
    table["state"] = "failed"
    table["top1"] = None
    table["error"] = "RuntimeError: boom"
    table.to_parquet(folder / "trials.parquet", index=False)
    report = build_report([folder])
    assert "fig-front" in report.figures and "fig-hv" not in report.figures
    html = write_report([folder], tmp_path / "bad.html").read_text()
    assert "RuntimeError: boom" in html and "needs at least 4 complete trials" in html


# --- CLI and static export ------------------------------------------------------------------------------------

def test_cli_report(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from archlab.cli.main import main
    out = tmp_path / "r.html"
    assert main(["report", str(runs["ablation"]), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.stat().st_size > 1_000_000
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(runs["ablation"]), "--out", str(tmp_path / "r.txt")]) == 2
    assert "must name an .html file" in capsys.readouterr().err


TABLE_CASES = [  # (column, row, value, rule): a hand-edited or foreign trials table
    ("number", 1, "abc", "column 'number' must be a whole trial number in [0, 1,000,000,000], got 'abc'"),
    ("number", 2, -1, "column 'number' must be a whole trial number"),
    ("number", 2, 1.5, "column 'number' must be a whole trial number"),
    ("number", 2, None, "column 'number' must be a whole trial number"),
    ("number", 2, 10 ** 30, "column 'number' must be a whole trial number"),
    ("number", 2, 0, "column 'number' must name each trial once, got 0"),
    ("top1", 1, "high", "column 'top1' must be a number (or empty), got 'high'"),
    ("latency_ms", 1, "inf", "column 'latency_ms' must be a finite number (an objective), got inf"),
    ("params", 1, "many", "column 'params' must be a number (or empty), got 'many'"),
]


@pytest.mark.parametrize("column, row, value, rule", TABLE_CASES)
def test_a_bad_trials_table_cell_is_named_not_a_traceback(runs: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture, column, row, value,
                                                          rule) -> None:
    from archlab.cli.main import main
    run = tmp_path / "run"
    shutil.copytree(runs["nsga2"], run)
    (run / "trials.parquet").unlink()
    table = pd.read_csv(run / "trials.csv").astype({column: object})
    table.loc[row, column] = value
    table.to_csv(run / "trials.csv", index=False)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archlab: error: {run / 'trials.csv'}: line {row + 2}: {rule}"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r.html").exists()


def test_a_bad_parquet_table_names_the_row_and_a_file_is_not_a_run_folder(runs: dict[str, Path], tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    from archlab.cli.main import main
    run = tmp_path / "run"
    shutil.copytree(runs["nsga2"], run)
    table = pd.read_parquet(run / "trials.parquet")
    table["top1"] = table["top1"].astype(str).replace("nan", "")
    table.loc[3, "top1"] = "n/a"
    table.to_parquet(run / "trials.parquet")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err == f"archlab: error: {run / 'trials.parquet'}: row 4: column 'top1' must be a number (or empty), " \
                  "got 'n/a'\n", err
    assert main(["report", str(run / "study.yaml")]) == 2
    assert "study.yaml: is a file, not a run folder" in capsys.readouterr().err
    (run / "trials.parquet").unlink()
    (run / "trials.csv").write_text("number,state\n0,complete\n1,complete,x,y\n")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err   # pandas' message ends in a newline of its own
    assert err.count("\n") == 1 and f"{run / 'trials.csv'}: cannot read the trials table" in err and "line 3" in err


ABLATION_CASES = [  # (edit of ablation.json, message): each was a traceback or taken as it was
    (lambda d: d["steps"][1].update(index="x"), "steps[1].index must be a whole number >= 0, got 'x'"),
    (lambda d: d["steps"][1].update(index=0), "steps[1].index must name each row once, got 0"),
    (lambda d: d["steps"][1].update(top1_mean="high"), "steps[1].top1_mean must be a number (or null), got 'high'"),
    (lambda d: d["steps"][1].update(top1_seeds="x"), "steps[1].top1_seeds must be a list of numbers (or null)"),
    (lambda d: d["steps"][2].update(parent=d["steps"][2]["step"]), "steps[2].parent must name an earlier row"),
    (lambda d: (d["steps"][1].update(parent=d["steps"][2]["step"]), d["steps"][2].update(parent=d["steps"][1]["step"])),
     "steps[1].parent must name an earlier row (or be null)"),
    (lambda d: d.update(agreement="x"), "agreement must be an object (or null), got 'x'"),
    (lambda d: d.update(setting=5), "setting must be an object (or null), got 5"),
]


@pytest.mark.parametrize("edit, rule", ABLATION_CASES)
def test_a_bad_ablation_json_is_named_not_a_traceback(runs: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture, edit, rule) -> None:
    from archlab.cli.main import main
    run = tmp_path / "run"
    shutil.copytree(runs["ablation"], run)
    doc = json.loads((run / "ablation.json").read_text())
    edit(doc)
    (run / "ablation.json").write_text(json.dumps(doc))
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archlab: error: {run / 'ablation.json'}: {rule}") and err.count("\n") == 1, err


@pytest.mark.parametrize("edit, where, rule", [
    ({"metrics": "top1"}, "summary.json", "metrics must be a list of objective names, got 'top1'"),
    ({"directions": ["up", "down"]}, "summary.json", "directions must each be maximize or minimize, got 'up'"),
    ({"metrics": ["top1", "latncy_ms"]}, "summary.json",
     "metrics must name columns of the trials table (did you mean 'latency_ms'?), got 'latncy_ms'"),
    ({"metrics": ["top1"]}, "summary.json", "metrics must name as many objectives as directions (2), got ['top1']"),
    ({"wall_s": "long"}, "summary.json", "wall_s must be a number of seconds, got 'long'"),
    ({"metrics": None, "objectives": [{"direction": "maximize"}]}, "study.yaml", "metrics must name columns of the "
                                                                                 "trials table"),
])
def test_bad_objectives_of_a_search_run_are_named_not_a_traceback(runs: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture, edit, where,
                                                                   rule) -> None:
    from archlab.cli.main import main
    run = tmp_path / "run"
    shutil.copytree(runs["nsga2"], run)
    summary = json.loads((run / "summary.json").read_text())
    summary.update({k: v for k, v in edit.items() if k != "objectives"})
    if "objectives" in edit:
        (run / "summary.json").unlink()
        study = yaml.safe_load((run / "study.yaml").read_text())
        (run / "study.yaml").write_text(yaml.safe_dump({**study, "objectives": edit["objectives"]}))
    else:
        (run / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archlab: error: {run / where}: {rule}") and err.count("\n") == 1, err


def test_a_budget_sweep_whose_lists_are_not_lists_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from archlab.cli.main import main
    sweep = tmp_path / "sweep"
    shutil.copytree(Path(__file__).resolve().parents[2] / "docs" / "ablation_replay" / "convnext_budget_sweep", sweep)
    doc = json.loads((sweep / "sweep.json").read_text())
    (sweep / "sweep.json").write_text(json.dumps({**doc, "toward": 5}))   # was a TypeError traceback
    assert main(["report", str(sweep / "budget-1"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err == f"archlab: error: {sweep / 'sweep.json'}: toward must be a list (or null), got 5\n", err


def test_static_export_skips_cleanly_without_kaleido(runs: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kaleido", None)       # import kaleido -> ImportError
    notes: list[str] = []
    path = write_report([runs["ablation"]], tmp_path / "a.html", static=True, log=notes.append)
    assert path.exists() and not (tmp_path / "a_figures").exists()
    assert notes and "kaleido is not installed" in notes[0]
