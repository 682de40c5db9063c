"""Latency predictors: the part decomposition, the serialised regressors, fit/eval round trips, file checks, CLI."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archlab.arch.zoo import get_spec
from archlab.cli.main import main
from archlab.core.errors import ArchlabError
from archlab.estimators.latency_fit import (
    FitOptions,
    _overhead_fit,
    denoised_latencies,
    evaluate,
    fit_predictor,
    load_space_file,
    sample_networks,
)
from archlab.estimators.latency_model import (
    KINDS,
    decompose,
    fit_linear,
    gbm_to_json,
    load_predictor,
    part_modules,
    predict_latency,
    predict_model,
    write_predictor,
)
from archlab.nn.build import build_model
from archlab.nn.complexity import complexity

DATA = Path(__file__).resolve().parents[1] / "data"
SPACE = DATA / "tiny_space.yaml"
# the shortest protocol that still runs every step of it: tests check plumbing and shapes, not figures
FAST = dict(max_seconds=0.05, part_seconds=0.02)


def _zoo(name: str, size: int):
    return get_spec(name).replace(img_size=size, num_classes=10)


# every family, every stem, downsample layers and pooling stages, SE, hidden FC heads
NETWORKS = [("resnet18", 32), ("resnet50", 32), ("mobilenet_v3_small", 32), ("efficientnet_b0", 32),
            ("convnext_tiny", 32), ("vgg11_bn", 32)]


@pytest.mark.parametrize("name, size", NETWORKS)
def test_decomposition_covers_every_block_exactly_once(name, size):
    spec = _zoo(name, size)
    parts = decompose(spec)
    assert [p.kind for p in parts].count("block") == spec.num_blocks
    assert parts[0].kind == "stem" and parts[-1].kind == "head"
    assert len({p.where for p in parts}) == len(parts)
    # the parts' MACs add up to the analytic count of the whole network
    assert sum(p.macs for p in parts) == complexity(spec).macs
    net = build_model(spec).eval()
    modules = part_modules(net)
    assert [w for w, _ in modules] == [p.where for p in parts]
    x = torch.randn(2, spec.in_chans, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y, z = net(x), x
        for part, (_, module) in zip(parts, modules):
            assert tuple(z.shape[1:]) == part.in_shape
            with FlopCounterMode(display=False) as counter:
                z = module(z)
            assert counter.get_total_flops() // 4 == part.macs  # FLOPs = 2 MACs, batch of 2
            assert tuple(z.shape[1:]) == part.out_shape
    assert torch.equal(y, z)  # run in turn, the parts are the network


def test_part_keys_name_what_sets_latency():
    spec = _zoo("resnet18", 32)
    blocks = [p for p in decompose(spec) if p.kind == "block"]
    # ResNet-18: the two blocks of stage 0 are one block at one input; every later stage's first block
    # changes width and resolution, so its second block differs from it
    assert blocks[0].key == blocks[1].key and blocks[2].key != blocks[3].key
    assert len(blocks) == 8 and len({p.key for p in blocks}) == 7
    bigger = [p for p in decompose(spec.replace(img_size=64)) if p.kind == "block"]
    assert not {p.key for p in bigger} & {p.key for p in blocks}


def test_sampled_networks_are_seeded_distinct_and_exclude_the_fit():
    space, info = load_space_file(SPACE)
    a = [s.arch_id for s in sample_networks(space, 6, seed=3)]
    assert a == [s.arch_id for s in sample_networks(space, 6, seed=3)] and len(set(a)) == 6
    assert a != [s.arch_id for s in sample_networks(space, 6, seed=4)]
    b = [s.arch_id for s in sample_networks(space, 4, seed=3, exclude=frozenset(a[:2]))]
    assert b[:2] == a[2:4]
    assert info["hash"] == load_space_file(SPACE)[1]["hash"] and len(info["hash"]) == 16


@pytest.mark.parametrize("loss", ["huber", "squared_error"])
def test_serialised_models_predict_what_scikit_learn_predicts(loss):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import HuberRegressor
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * rng.normal(size=80) + np.sin(3 * x[:, 0])
    names = tuple("abcde")
    gbm = GradientBoostingRegressor(loss=loss, n_estimators=40, max_depth=3, subsample=0.7, random_state=1).fit(x, y)
    model = json.loads(json.dumps(gbm_to_json(gbm, names)))  # through JSON text, as the file holds it
    assert np.allclose(predict_model(model, x), gbm.predict(x), rtol=0, atol=1e-9)
    linear = json.loads(json.dumps(fit_linear(x, y, names)))
    z = (x - x.mean(0)) / x.std(0)
    ref = HuberRegressor(epsilon=1.35, alpha=1.0, max_iter=2000).fit(z, y)
    assert np.allclose(predict_model(linear, x), ref.predict(z), atol=1e-9)


def test_the_robust_fits_ignore_a_preempted_measurement():
    # eight networks on a line, one measured 5x too slow (its process lost the core): the fits keep the line
    summed = np.arange(1.0, 9.0)
    y = 0.5 + 2.0 * summed
    noisy = y.copy()
    noisy[3] *= 5
    intercept, slope = _overhead_fit(summed, noisy)
    assert abs(intercept - 0.5) < 1e-3 and abs(slope - 2.0) < 1e-3
    assert _overhead_fit(summed, 2.0 * summed - 1.0)[0] == 0.0  # never a negative time for a small network
    x = np.log(summed)[:, None]
    linear = fit_linear(x, np.log(noisy), ("x",))
    assert np.max(np.abs(np.exp(predict_model(linear, x)) - y)[np.arange(8) != 3] / y[np.arange(8) != 3]) < 0.1


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predictor")
    opts = FitOptions(seed=0, lock_dir=str(folder / "locks"), **FAST)
    data = fit_predictor(SPACE, 6, opts)
    path = write_predictor(folder / "tiny.json", data)
    return path, data, folder


def test_fit_writes_a_checked_file_with_every_kind(fitted):
    path, data, _ = fitted
    pred = load_predictor(path)
    assert pred.kinds == KINDS and pred.selected in KINDS
    t = pred.target
    assert (t["device"], t["threads"], t["batch"], t["img_size"], t["in_chans"]) == ("cpu", 1, 1, 16, 3)
    assert t["stack"].startswith("torch ") and t["device_name"]
    fit = data["fit"]
    assert fit["n"] == 6 and len(data["train"]) == 6 and fit["timed_parts"] == fit["distinct_parts"] > 6
    assert sum(fit["figures"].values()) == 6 + fit["timed_parts"]
    assert set(fit["figures"]) <= {"nominal_ms", "median_ms"}
    assert len(pred.data["models"]["lookup"]["table"]) == fit["timed_parts"]
    assert "pickle" not in path.read_text() and json.loads(path.read_text())["version"] == 1
    space, _ = load_space_file(SPACE)
    spec = sample_networks(space, 1, seed=0)[0]
    by_kind = pred.predict_all(spec)
    assert set(by_kind) == set(KINDS) and all(ms > 0 for ms in by_kind.values())
    assert predict_latency(spec, path) == by_kind[pred.selected] == pred.predict(spec)
    assert predict_latency(spec, path, "linear") == by_kind["linear"]
    with pytest.raises(ArchlabError, match="for 3x16x16 inputs and 1000 classes, got a network for 3x32x32 and 1000"):
        pred.predict(spec.replace(img_size=32))


def test_eval_measures_new_networks_twice(fitted):
    path, data, folder = fitted
    result = evaluate(path, 3, lock_dir=str(folder / "locks"))
    train = {r["arch_id"] for r in data["train"]}
    assert len(result["networks"]) == 3 and not train & {r["arch_id"] for r in result["networks"]}
    assert set(result["kinds"]) == set(KINDS)
    for metrics in [*result["kinds"].values(), result["repeatability"]]:
        assert 0 <= metrics["within_5"] <= metrics["within_10"] <= 1 and metrics["mape"] >= 0
        assert metrics["n"] == 3
    assert all(r["first_ms"] > 0 and r["second_ms"] > 0 for r in result["networks"])
    assert 0 <= result["lookup_table_hits"] <= 1


def test_cli_eval_json_shape_and_text(fitted, capsys, monkeypatch):
    path, _, folder = fitted
    monkeypatch.setenv("ARCHLAB_LOCK_DIR", str(folder / "locks"))
    assert main(["predictor", "eval", str(path), "-n", "2", "--seed", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"file", "space", "n", "seed", "selected", "target", "kinds", "repeatability", "networks"} <= set(out)
    assert out["seed"] == 5 and set(out["kinds"]) == set(KINDS)
    assert set(out["repeatability"]) == {"n", "within_10", "within_5", "mape", "max_error", "spearman", "kendall"}
    assert set(out["networks"][0]) == {"arch_id", "first_ms", "second_ms", "lookup_ms", "linear_ms", "gbm_ms"}


def test_cli_fit_json_and_predict(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARCHLAB_LOCK_DIR", str(tmp_path / "locks"))
    out = tmp_path / "p.json"
    assert main(["predictor", "fit", str(SPACE), "-n", "4", "--seed", "2", "--max-seconds", "0.05",
                 "--part-seconds", "0.02", "--max-parts", "3", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"file", "target", "space", "fit", "cv", "selected"}
    assert summary["fit"]["timed_parts"] == 3 < summary["fit"]["distinct_parts"]
    assert set(summary["cv"]) == set(KINDS)
    assert main(["predictor", "predict", str(out), "resnet18", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "resnet18" and all(rows[0][f"{k}_ms"] > 0 for k in KINDS)


# --- bad input ------------------------------------------------------------------------------------------------

def _one_message(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_counts_and_unfit_spaces_exit_2(tmp_path, capsys):
    out = str(tmp_path / "p.json")
    _one_message(capsys, ["predictor", "fit", str(SPACE), "-n", "0", "--out", out], "-n must be at least 4", "got 0")
    _one_message(capsys, ["predictor", "fit", str(SPACE), "--out", out], "give -n N")
    space = tmp_path / "patchify.yaml"
    space.write_text(SPACE.read_text().replace("stem: {type: conv, width: [8, 16], kernel_size: 3, stride: 1}",
                                               "stem: {type: patchify, width: 8, kernel_size: 4, stride: 4}"))
    _one_message(capsys, ["predictor", "fit", str(space), "-n", "5", "--img-size", "2", "--out", out],
                 "patchify.yaml", "found only 0 of 5", "at --img-size 2 in 500 random draws", "the stem leaves 0 px")
    assert not Path(out).exists()


def _tampered(fitted, folder: Path, change) -> Path:
    path, data, _ = fitted
    data = json.loads(path.read_text())
    change(data)
    out = folder / "tampered.json"
    write_predictor(out, data)  # a fresh checksum: only the content check can catch it
    return out


def test_corrupt_files_are_refused(fitted, tmp_path, capsys):
    path, _, _ = fitted
    text = path.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    _one_message(capsys, ["predictor", "eval", str(cut), "-n", "2"], "cut.json", "not a readable latency predictor")
    edited = tmp_path / "edited.json"
    edited.write_text(text.replace('"batch": 1', '"batch": 2'))
    _one_message(capsys, ["predictor", "eval", str(edited), "-n", "2"], "edited.json", "checksum does not match")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    _one_message(capsys, ["predictor", "predict", str(other), "resnet18"], "is not an archlab latency predictor")

    def loop(d):
        d["models"]["gbm"]["trees"][0]["left"][0] = 0
    _one_message(capsys, ["predictor", "predict", str(_tampered(fitted, tmp_path, loop)), "resnet18"],
                 "models.gbm.trees[0] node 0", "has children or a feature out of range")

    def short(d):
        d["models"]["linear"]["coef"] = d["models"]["linear"]["coef"][:-1]
    _one_message(capsys, ["predictor", "predict", str(_tampered(fitted, tmp_path, short)), "resnet18"],
                 "models.linear.coef must be")


def test_files_for_another_device_or_space_are_refused(fitted, tmp_path, capsys):
    path, _, _ = fitted

    def elsewhere(d):
        d["target"]["device_name"] = "Some Other CPU"
    _one_message(capsys, ["predictor", "eval", str(_tampered(fitted, tmp_path, elsewhere)), "-n", "2"],
                 "fitted for device_name 'Some Other CPU'", "fit one there")
    with pytest.raises(ArchlabError, match="fitted for device 'cpu', but 'cuda' was asked for"):
        load_predictor(path, device="cuda")
    space = tmp_path / "wider.yaml"
    space.write_text(SPACE.read_text().replace("width: [8, 16]", "width: [8, 16, 32]"))
    _one_message(capsys, ["predictor", "eval", str(path), "-n", "2", "--space", str(space)],
                 "was fitted on space 'tiny'", "not on this space")


def test_csv_import_fits_the_regressors(fitted, tmp_path, capsys):
    _, data, _ = fitted
    space, _ = load_space_file(SPACE)
    specs = sample_networks(space, 8, seed=11)
    table = tmp_path / "phone.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spec", "latency_ms", "device", "threads"])
        for s in specs:  # a made-up device whose latency follows MACs: the fit must find that
            w.writerow([s.to_json(), 0.2 + complexity(s).macs / 1e6, "pixel-4 big core", 4])
    out = tmp_path / "phone.json"
    assert main(["predictor", "fit", str(SPACE), "--from-csv", str(table), "--out", str(out)]) == 0
    assert "pixel-4 big core" in capsys.readouterr().out
    _one_message(capsys, ["predictor", "eval", str(out), "-n", "2"], "from device 'pixel-4 big core'",
                 "eval measures on this machine")
    pred = load_predictor(out, device="pixel-4 big core", threads=4)
    assert pred.kinds == ("linear", "gbm")
    probe = sample_networks(space, 1, seed=99)[0]
    truth = 0.2 + complexity(probe).macs / 1e6
    assert abs(pred.predict(probe, "linear") - truth) / truth < 0.25
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spec", "latency_ms", "device"])
        w.writerow([specs[0].to_json(), "-1", "x"])
    _one_message(capsys, ["predictor", "fit", str(SPACE), "--from-csv", str(bad), "--out", str(out)],
                 "bad.csv: line 2: latency_ms must be a positive number", "'-1'")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("spec,device\n{},x\n")
    _one_message(capsys, ["predictor", "fit", str(SPACE), "--from-csv", str(nocol), "--out", str(out)],
                 "nocol.csv: has no 'latency_ms' column")


def test_a_run_folders_trials_table_imports_and_denoises(tmp_path, capsys):
    space, _ = load_space_file(SPACE)
    drawn = space.sample(6, seed=5)
    table = tmp_path / "trials.csv"
    names = sorted({k for params, _ in drawn for k in params})
    with table.open("w", newline="") as f:  # the run folder's shape: params_<name>, latency_ms, no device
        w = csv.writer(f)
        w.writerow(["number", *(f"params_{k}" for k in names), "latency_ms"])
        for i, (params, spec) in enumerate(drawn):
            w.writerow([i, *(json.dumps(params[k]) if k in params else "" for k in names),
                        0.1 + complexity(spec).macs / 1e6])
        w.writerow([6, *("" for _ in names), ""])  # a failed trial: no latency, skipped
    out = tmp_path / "run.json"
    _one_message(capsys, ["predictor", "fit", str(SPACE), "--from-csv", str(table), "--out", str(out)],
                 "has no 'device' column", "--device-name")
    assert main(["predictor", "fit", str(SPACE), "--from-csv", str(table), "--device-name", "this cpu",
                 "--out", str(out), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert fit["n"] == 6 and fit["skipped_rows"] == 1
    pred = load_predictor(out, device="this cpu")
    assert [r["arch_id"] for r in pred.data["train"]] == [s.arch_id for _, s in drawn]
    specs = [s for _, s in drawn]
    noisy = [0.1 + complexity(s).macs / 1e6 * (3.0 if i == 2 else 1.0) for i, s in enumerate(specs)]
    smooth = denoised_latencies(specs, noisy)
    assert len(smooth) == 6 and all(v > 0 for v in smooth)
    with pytest.raises(ArchlabError, match="at least 4"):
        denoised_latencies(specs[:2], noisy[:2])


def test_a_study_can_take_its_latency_from_a_predictor(fitted, tmp_path):
    from types import SimpleNamespace

    from archlab.core.yamlio import load_yaml_text
    from archlab.search.study import study_from_dict
    from archlab.search.trial import _measure
    path, _, _ = fitted
    data = load_yaml_text((DATA / "tiny_study.yaml").read_text())
    (tmp_path / "tiny_space.yaml").write_text(SPACE.read_text())
    (tmp_path / "p.json").write_text(path.read_text())
    study = study_from_dict({**data, "latency": {**data["latency"], "predictor": "p.json"}},
                            file=tmp_path / "study.yaml")
    assert study.latency.predictor == str(tmp_path / "p.json")  # relative to the study file
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ArchlabError, match="latency.predictor must be a latency predictor file"):
        study_from_dict({**data, "latency": {**data["latency"], "predictor": "bad.json"}}, file=tmp_path / "s.yaml")
    spec = sample_networks(load_space_file(SPACE)[0], 1, seed=7)[0]
    settings = SimpleNamespace(latency={"predictor": str(path)}, run_dir=str(tmp_path))
    fields = _measure(spec, settings)
    assert fields["latency_predicted"] is True and fields["latency_ms"] == predict_latency(spec, path)
