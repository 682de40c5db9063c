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
