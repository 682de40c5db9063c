"""`archlab export`: ONNX, TorchScript and torch.export files checked against the PyTorch module; bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, load_spec
from archlab.arch.zoo import get_spec
from archlab.core.errors import ArchlabError
from archlab.export import exporter
from archlab.export.exporter import export_model
from archlab.nn.build import build_model
from archlab.nn.weights import load_checkpoint, save_weights


def tiny_spec() -> ArchSpec:
    """A two-family network small enough to export in a second: conv stem, basic and MBConv-with-SE stages."""
    return ArchSpec(stem=StemSpec(width=8, stride=1, act="hardswish"),
                    stages=(StageSpec(block="basic", depth=1, width=8, stride=2),
                            StageSpec(block="inverted_residual", depth=2, width=16, stride=2, expand_ratio=2.0,
                                      se_ratio=0.25, act="silu")),
                    head=HeadSpec(conv_width=32, dropout=0.1), img_size=16, in_chans=1, num_classes=10, name="tiny")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archlab.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return out, export_model(tiny_spec(), "onnx", out)


def test_onnx_export_checked_and_dynamic(onnx_export):
    out, result = onnx_export
    assert sorted(Path(f).name for f in result.files) == ["export.json", "model.onnx", "spec.yaml",
                                                           "weights.safetensors"]
    assert result.max_abs_diff < 1e-4 and result.opset == exporter.ONNX_OPSET and result.check_batch == 2
    proto = onnx.load(str(out / "model.onnx"))
    assert any(o.version == exporter.ONNX_OPSET for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch dimension
    # the file runs at another batch size, and equals the module built from the files written beside it
    model = build_model(load_spec(out / "spec.yaml")).eval()
    model.load_state_dict(load_checkpoint(out / "weights.safetensors"), strict=True)
    x = torch.randn(5, 1, 16, 16)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        assert torch.allclose(got, model(x), atol=1e-4)
    info = json.loads((out / "export.json").read_text())
    assert info["max_abs_diff"] == result.max_abs_diff and "onnxruntime" in info["versions"]
    assert not list(out.glob(".export-*"))  # the staging folder is gone


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_torchscript_and_exported(tmp_path, fmt):
    result = export_model(tiny_spec(), fmt, tmp_path, batch=3)
    assert result.max_abs_diff < 1e-5 and result.check_batch == 3 and result.input_shape[0] == 3
    assert not any("traced" in n for n in result.notes)  # scripted, not traced
    name = {"torchscript": "model.ts", "exported": "model.pt2"}[fmt]
    assert (tmp_path / name).is_file()


def test_zoo_families_script():
    """torch.jit.script works on every family (a string annotation on Block used to break it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for name in ("resnet18", "mobilenet_v3_small", "convnext_tiny", "shufflenet_v2_x0_5", "googlenet"):
            model = build_model(get_spec(name, img_size=64)).eval()
            scripted = torch.jit.script(model)
            x = torch.randn(1, 3, 64, 64)
            with torch.no_grad():
                assert torch.equal(scripted(x), model(x)), name


def test_script_failure_falls_back_to_trace_with_warning(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported construct")

    monkeypatch.setattr(torch.jit, "script", refuse)
    with pytest.warns(UserWarning, match="traced instead"):
        result = export_model(tiny_spec(), "torchscript", tmp_path)
    assert any("traced instead" in n for n in result.notes) and result.max_abs_diff < 1e-5


def test_failed_export_writes_nothing(tmp_path, monkeypatch):
    def broken(model, x, dynamic, path, notes):
        path.write_bytes(b"half a file")
        raise RuntimeError("operator not supported")

    monkeypatch.setitem(exporter.FORMATS, "exported", exporter.FORMATS["exported"].__class__(
        "model.pt2", broken, exporter.FORMATS["exported"].run, "broken"))
    with pytest.raises(ArchlabError, match="cannot be exported as exported: RuntimeError: operator not supported"):
        export_model(tiny_spec(), "exported", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_json_and_trial(tmp_path, capfd):
    run_dir = tmp_path / "run"
    trial = run_dir / "trials" / "0003"
    trial.mkdir(parents=True)
    spec = tiny_spec()
    (trial / "spec.yaml").write_text(spec.to_yaml())
    torch.manual_seed(7)
    trained = build_model(spec)
    save_weights(trained, trial / "weights.safetensors")
    from archlab.cli.main import main
    assert main(["export", f"{run_dir}:3", "--format", "torchscript", "--out", str(tmp_path / "dep"), "--json"]) == 0
    data = json.loads(capfd.readouterr().out)  # stdout (the file descriptor) holds the JSON alone
    assert data["max_abs_diff"] < 1e-5 and data["weights"].endswith("0003/weights.safetensors")
    assert sorted(Path(f).name for f in data["files"])[-1] == "weights.safetensors"
    written = load_checkpoint(tmp_path / "dep" / "weights.safetensors")
    assert all(torch.equal(written[k], v) for k, v in trained.state_dict().items())


def test_cli_onnx_progress_goes_to_stderr(tmp_path, capfd):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(tiny_spec().to_yaml())
    from archlab.cli.main import main
    assert main(["export", str(spec_file), "--format", "onnx", "--batch", "4", "--out", str(tmp_path / "o"),
                 "--json"]) == 0
    captured = capfd.readouterr()
    data = json.loads(captured.out)  # fd 1 holds the JSON alone (the exporter's progress would go to stderr)
    assert data["input_shape"] == [4, 1, 16, 16] and data["opset"] == exporter.ONNX_OPSET
    proto = onnx.load(str(tmp_path / "o" / "model.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def user_error(capsys, *args: str) -> str:
    """Run the CLI in-process; it must exit 2 with one message and no traceback. The message."""
    from archlab.cli.main import main
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and ("archlab: error:" in err or "error: argument" in err), err
    return err


def test_bad_input_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "out"
    existing = tmp_path / "a_file"
    existing.write_text("x")
    assert "names an existing file" in user_error(capsys, "export", "resnet18", "--format", "onnx", "--out",
                                                  str(existing))
    err = user_error(capsys, "export", "resnet18", "--format", "tflite", "--out", str(out))
    assert "tflite" in err and "'onnx', 'torchscript', 'exported'" in err
    with pytest.raises(ArchlabError, match="unknown export format 'tflite': must be one of onnx, torchscript"):
        export_model(tiny_spec(), "tflite", out)
    assert "--batch" in user_error(capsys, "export", "resnet18", "--format", "onnx", "--batch", "0", "--out", str(out))
    assert "no trial 9" in user_error(capsys, "export", f"{tmp_path}:9", "--format", "onnx", "--out", str(out))
    err = user_error(capsys, "export", f"{tmp_path}:last", "--format", "onnx", "--out", str(out))
    assert f"{tmp_path}:last: the trial after the colon must be a whole number (RUN_DIR:NUMBER), got 'last'" in err
    assert "valid:" not in err   # was "unknown zoo network" and every zoo name
    wrong = tmp_path / "mnv2.safetensors"
    save_weights(build_model(get_spec("mobilenet_v2", img_size=32)), wrong)
    err = user_error(capsys, "export", "resnet18", "--format", "onnx", "--weights", str(wrong), "--out", str(out))
    assert "do not fit resnet18" in err and "missing keys" in err and "archlab mobilenet_v2" in err
    pickle_file = tmp_path / "w.pth"
    torch.save(build_model(tiny_spec()).state_dict(), pickle_file)
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(tiny_spec().to_yaml())
    assert "--trust-pickle" in user_error(capsys, "export", str(spec_file), "--format", "exported", "--weights",
                                          str(pickle_file), "--out", str(out))
    truncated = tmp_path / "cut.safetensors"
    save_weights(build_model(tiny_spec()), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    assert "corrupt or truncated" in user_error(capsys, "export", str(spec_file), "--format", "exported",
                                                "--weights", str(truncated), "--out", str(out))
    assert not out.exists() or not any(out.iterdir())
    from archlab.cli.main import main
    assert main(["export", str(spec_file), "--format", "exported", "--weights", str(pickle_file), "--trust-pickle",
                 "--out", str(out)]) == 0


def test_a_batch_too_large_an_input_out_of_memory_and_nan_weights_are_one_message(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    err = user_error(capsys, "export", "lenet5", "--format", "torchscript", "--batch", "100000000", "--out", str(out))
    assert "--batch must be 'dynamic' or a whole number in [1, 4096], got '100000000'" in err
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(tiny_spec().to_yaml())
    nan = tmp_path / "nan.safetensors"
    state = build_model(tiny_spec()).state_dict()
    state["stem.0.0.weight"] = torch.full_like(state["stem.0.0.weight"], float("nan"))
    save_weights(state, nan)
    err = user_error(capsys, "export", str(spec_file), "--format", "torchscript", "--weights", str(nan), "--out",
                     str(out))   # was "differs from the PyTorch module by nan", naming neither file nor tensor
    assert f"{nan}: tensor stem.0.0.weight holds NaN or infinite values; the weights must be finite" in err

    def no_memory(spec: ArchSpec) -> torch.nn.Module:   # what torch's CPU allocator raises at 8192 px
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 32117952000 bytes. Error code 12 (Cannot allocate memory)")
    monkeypatch.setattr(exporter, "build_model", no_memory)
    err = user_error(capsys, "export", "lenet5", "--format", "torchscript", "--img-size", "8192", "--out", str(out))
    assert "lenet5 on a 2x1x8192x8192 input does not fit in memory here (out of memory: 29.9 GiB could not be " \
           "allocated); " \
           "use a smaller --img-size or --batch" in err
    assert not out.exists() or not any(out.iterdir())


def test_one_subprocess_error_has_no_traceback(tmp_path):
    wrong = tmp_path / "w.safetensors"
    save_weights({"a": torch.zeros(3)}, wrong)
    proc = run("export", "lenet5", "--format", "onnx", "--weights", str(wrong), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.startswith("archlab: error:") and "Traceback" not in proc.stderr
    assert "do not fit lenet5" in proc.stderr and not (tmp_path / "o").exists()
