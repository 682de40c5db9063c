"""bench/make_efficiency_table.py: the grid, a real row, resuming without retraining, and the families space."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import make_efficiency_table as mt

TINY = """\
name: tiny_table
img_size: 32
tied:
  k: [3, 5]
stem: {type: conv, width: 8, kernel_size: 3, stride: 2, act: relu}
all_stages: {block: inverted_residual, kernel_size: $k, expand_ratio: 2, act: relu}
stages:
  - {width: 8, depth: 1, stride: 2}
  - {width: 16, depth: [1, 2], stride: 2}
head: {conv_width: null}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_space.yaml"
    path.write_text(TINY)
    return path


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_grid_enumerates_every_point_and_refuses_a_conditional_space(tiny: Path, tmp_path: Path):
    points = mt.grid(tiny)
    assert points == [{"k": 3, "stage1.depth": 1}, {"k": 3, "stage1.depth": 2},
                      {"k": 5, "stage1.depth": 1}, {"k": 5, "stage1.depth": 2}]
    assert len(set(mt.arch_ids(points, tiny))) == 4
    assert mt.table_for(mt.SPACE) == mt.TABLE and mt.table_for(tiny).name == "tiny_table.csv"
    conditional = tmp_path / "cond_space.yaml"
    conditional.write_text(TINY.replace("expand_ratio: 2", "expand_ratio: 2, se_ratio: [0.0, 0.25], "
                                        "se_gate: {choices: [sigmoid, hard_sigmoid], when: {se_ratio: 0.25}}"))
    with pytest.raises(SystemExit, match="categorical and unconditional"):
        mt.grid(conditional)


def test_evaluate_trains_a_real_row(tiny: Path):
    row = mt.evaluate(mt.Job({"k": 3, "stage1.depth": 1}, tiny, limit=256, epochs=0.5))
    assert list(row) == mt.columns(tiny)
    assert row["arch_id"] == mt.arch_ids([{"k": 3, "stage1.depth": 1}], tiny)[0]
    assert 0.0 <= row["top1"] <= 100.0 and row["latency_ms"] > 0 and row["params"] > 0 and row["macs"] > 0


def _fake(job: mt.Job) -> dict:
    """A table row without training: top-1 from the point, so resumed and fresh rows can be told apart."""
    (arch_id,) = mt.arch_ids([job.params], job.space)
    return {**{f"params_{k}": v for k, v in job.params.items()}, "arch_id": arch_id, "params": 1, "macs": 2,
            "top1": 50.0 + job.params["k"] + job.params["stage1.depth"], "latency_ms": 1.0, "latency_cv": 0.1,
            "train_s": 0.0}


def test_an_interrupted_run_resumes_without_retraining(tiny: Path, tmp_path: Path):
    out = tmp_path / "table.csv"
    calls: list[dict] = []

    def dies_on_third(job: mt.Job) -> dict:
        calls.append(job.params)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed while the third network trains
        return _fake(job)

    with pytest.raises(KeyboardInterrupt):
        mt.make_table(tiny, out, fn=dies_on_third, log=lambda _: None)
    assert [r["params_stage1.depth"] for r in _rows(out)] == ["1", "2"]  # rows kept as each finished

    resumed: list[dict] = []

    def counting(job: mt.Job) -> dict:
        resumed.append(job.params)
        return _fake(job)

    log: list[str] = []
    assert mt.make_table(tiny, out, fn=counting, log=log.append) == 2
    assert resumed == [{"k": 5, "stage1.depth": 1}, {"k": 5, "stage1.depth": 2}]  # only what was missing
    assert "2 already in" in log[0] and "ETA" in log[-1]
    rows = _rows(out)
    assert list(rows[0]) == mt.columns(tiny)
    assert [r["arch_id"] for r in rows] == mt.arch_ids(mt.grid(tiny), tiny)  # complete: rewritten in grid order
    assert mt.make_table(tiny, out, fn=counting, log=lambda _: None) == 0  # nothing left to train
    assert len(_rows(out)) == 4


def test_a_table_of_another_space_is_not_resumed(tiny: Path, tmp_path: Path):
    out = tmp_path / "table.csv"
    out.write_text("params_act,arch_id\nrelu,abc\n")
    with pytest.raises(SystemExit, match="not this space's"):
        mt.make_table(tiny, out, fn=_fake, log=lambda _: None)


def test_the_families_space_is_an_enumerable_grid_of_valid_networks():
    from archlab.cli.main import main
    from archlab.nn.complexity import complexity
    from archlab.space.search_space import load_space
    space_file = mt.SPACE.with_name("families_space.yaml")
    assert main(["validate", str(space_file)]) == 0
    points = mt.grid(space_file)
    assert 150 <= len(points) <= 200
    space = load_space(space_file)
    specs = [space.decode(p, img_size=32, in_chans=1, num_classes=10) for p in points]
    assert len({s.arch_id for s in specs}) == len(points)  # every point is one table row
    assert {s.stages[0].block for s in specs} == {"inverted_residual", "shuffle", "convnext"}
    assert all(s.in_chans == 1 and s.num_classes == 10 and s.img_size == 32 for s in specs)
    assert all(not space.violations(s) and complexity(s).params > 0 for s in specs)


def test_a_diverged_network_is_recorded_at_chance(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture):
    import archlab.measure.train as train_module

    def diverges(*args, **kwargs):
        raise train_module.DivergedError(0.2, 12, float("nan"), 0.05)

    import types

    import archlab.measure.latency as latency_module
    monkeypatch.setattr(train_module, "train", diverges)
    monkeypatch.setattr(latency_module, "measure_latency",
                        lambda *a, **k: types.SimpleNamespace(median_ms=1.5, cv=0.1))  # timed in the test above
    row = mt.evaluate(mt.Job({"k": 5, "stage1.depth": 2}, tiny, limit=256))
    assert row["top1"] == 10.0 and row["latency_ms"] == 1.5  # Fashion-MNIST's 10 classes: chance is 10 %
    assert "recorded at chance" in capsys.readouterr().out
