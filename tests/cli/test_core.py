"""`archlab zoo` and `archlab show` as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys

from archlab.arch.zoo import get_spec, zoo_names
from archlab.cli.main import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archlab.cli", *args], capture_output=True, text=True)


def test_zoo_lists_every_name(capsys):
    assert main(["zoo"]) == 0
    assert capsys.readouterr().out.split() == zoo_names()


def test_show_json_several_names(capsys):
    assert main(["show", "resnet50", "convnext_tiny", "--json", "--img-size", "224"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["resnet50", "convnext_tiny"]
    assert data[0]["params"] == 25_557_032 and data[1]["params"] == 28_589_128
    assert all(d["img_size"] == 224 and d["macs"] > 0 for d in data)


def test_show_table_and_spec_file(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(get_spec("mobilenet_v2").to_yaml())
    assert main(["show", str(path), "--img-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "inverted_residual" in out and "total: 3,504,872 parameters" in out


def test_user_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(get_spec("resnet18").to_yaml().replace("kernel_size: 3", "kernel_size: 4", 1))
    for args in (["show", "resnet05"], ["show", str(bad)], ["show", str(tmp_path / "none.yaml")]):
        proc = run(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("archlab: error:")
    assert "did you mean 'resnet50'" in run("show", "resnet05").stderr
    assert "kernel_size must be odd" in run("show", str(bad)).stderr


def test_a_side_too_small_names_the_network(tmp_path, capsys):
    # was "img_size is too small: the stem leaves 0 px, got 8", naming no network
    spec_file = tmp_path / "lenet.yaml"
    spec_file.write_text(get_spec("lenet5").to_yaml())
    for args, where in ((["show", "alexnet", "--img-size", "8"], "alexnet"),
                        (["latency", "convnext_tiny", "--img-size", "2"], "convnext_tiny"),
                        (["show", str(spec_file), "--img-size", "2"], str(spec_file))):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"archlab: error: {where}: img_size is too small: ") and err.count("\n") == 1, err


# --- hand-off: --version, --json, --weights, train --out ----------------------------------------------------

def test_version(capsys):
    import pytest
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"archlab {__import__('archlab').__version__}"


def test_zoo_json(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == zoo_names()
    r50 = next(r for r in rows if r["name"] == "resnet50")
    assert (r50["params"], r50["arch_id"], r50["timm_name"]) == (25_557_032, "0906cb16f5c85e71", "archlab_resnet50")


def test_validate_json(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: 3\n")
    good = "search_spaces/mobile.yaml"
    assert main(["validate", good, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["ok"] and rows[0]["kind"] == "space" and rows[0]["path"] == good
    assert main(["validate", good, str(bad), "--json"]) == 2
    rows = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in rows] == [True, False] and "bad.yaml" in rows[1]["message"]


def test_report_json(tmp_path, capsys):
    from tests.report.fixtures import make_search_run
    run_dir = make_search_run(tmp_path / "run", n_trials=6)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"] == str(tmp_path / "r.html") and (tmp_path / "r.html").stat().st_size > 1000


def test_show_weights_fit_and_mismatch(tmp_path, capsys):
    from archlab.nn.build import build_model
    from archlab.nn.weights import save_weights, to_torchvision
    model = build_model(get_spec("resnet18", num_classes=10))
    path = save_weights(to_torchvision("resnet18", model.state_dict()), tmp_path / "tv.safetensors")
    assert main(["show", "resnet18", "--weights", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["weights"]["layout"] == "torchvision" and row["weights"]["num_classes"] == 10
    assert main(["show", "resnet34", "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert "do not fit torchvision resnet34" in err and "missing keys" in err and "torchvision resnet18" in err


def test_train_out_writes_spec_weights_and_json(tmp_path, capsys):
    from archlab.arch.spec import ArchSpec, StageSpec, StemSpec, load_spec
    from archlab.nn.build import build_model
    from archlab.nn.weights import load_checkpoint, metadata_of
    spec = ArchSpec(stem=StemSpec(width=8, stride=1), stages=(StageSpec(block="basic", depth=1, width=8, stride=2),),
                    img_size=8, in_chans=1, num_classes=10, name="tiny")
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(spec.to_yaml())
    out = tmp_path / "trained"
    args = ["train", str(spec_file), "--dataset", "digits", "--images", "256", "--val-limit", "100", "--json"]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    info = json.loads((out / "train.json").read_text())
    assert info["top1"] == result["top1"] and info["data"]["name"] == "digits" and info["budget"]["images"] == 256
    assert info["recipe"]["name"] == "classic" and {"torch", "timm", "archlab"} <= set(info["versions"])
    trained_spec = load_spec(out / "spec.yaml")
    assert trained_spec.arch_id == spec.arch_id and metadata_of(out / "weights.safetensors")["arch_id"] == spec.arch_id
    model = build_model(trained_spec)
    model.load_state_dict(load_checkpoint(out / "weights.safetensors"), strict=True)
    assert not torch_equal_to_init(model, trained_spec)
    # and training can start from those weights again
    assert main([*args, "--weights", str(out / "weights.safetensors"), "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "train.json").read_text())["init_weights"].endswith("weights.safetensors")


def torch_equal_to_init(model, spec) -> bool:
    import torch

    from archlab.nn.build import build_model
    torch.manual_seed(0)
    fresh = build_model(spec)
    return all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_latency_onnxruntime_json_is_valid(tmp_path, capfd):
    from archlab.arch.spec import ArchSpec, StageSpec, StemSpec
    spec = ArchSpec(stem=StemSpec(width=8, stride=1), stages=(StageSpec(block="basic", depth=1, width=8, stride=2),),
                    img_size=16, in_chans=1, num_classes=10, name="tiny")
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(spec.to_yaml())
    assert main(["latency", str(spec_file), "--backend", "onnxruntime", "--threads", "1", "--max-seconds", "1",
                 "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)  # fd 1 holds the JSON alone: the exporter's progress went to stderr
    assert rows[0]["backend"] == "onnxruntime" and rows[0]["median_ms"] > 0
