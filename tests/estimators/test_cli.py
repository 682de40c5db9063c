"""`archlab proxies` as a user runs it: JSON shape, determinism and one-message exits on bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from archlab.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data"
SPACE, STUDY = DATA / "tiny_space.yaml", DATA / "tiny_study.yaml"
FEW = "params,macs,synflow,nwot,zico,az_nas"


def _json(capsys, *args: str) -> list[dict]:
    assert main(["proxies", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_study_json_has_one_key_per_proxy_and_is_seeded(capsys):
    rows = _json(capsys, str(STUDY), "-n", "3", "--proxies", FEW, "--seed", "1")
    assert len(rows) == 3 and len({r["arch_id"] for r in rows}) == 3
    keys = {"arch_id", "params", "macs", "synflow", "nwot", "zico", "az_nas", "az_expressivity",
            "az_progressivity", "az_trainability"}
    assert all(set(r) == keys for r in rows)
    assert all(isinstance(r["params"], int) and r["params"] > 0 and r["macs"] > 0 for r in rows)
    assert all(isinstance(r["nwot"], float) and math.isfinite(r["nwot"]) for r in rows)
    assert rows == _json(capsys, str(STUDY), "-n", "3", "--proxies", FEW, "--seed", "1")
    other = _json(capsys, str(STUDY), "-n", "3", "--proxies", FEW, "--seed", "2")
    assert [r["arch_id"] for r in other] != [r["arch_id"] for r in rows]


def test_space_file_on_digits_with_an_img_size_and_a_text_table(capsys):
    assert main(["proxies", str(SPACE), "-n", "2", "--dataset", "digits", "--img-size", "8",
                 "--proxies", "snip,meco"]) == 0
    out = capsys.readouterr().out
    assert "snip" in out and "meco" in out and "2 networks scored on digits at 1x8x8" in out


@pytest.mark.parametrize("args, message", [
    (["--proxies", "synflw"], "unknown proxy 'synflw' (did you mean 'synflow'?)"),
    (["--dataset", "fashon_mnist"], "did you mean 'fashion_mnist'"),
])   # bad numbers (-n 0, --batch-size 0, --img-size 0) are argparse's: tests/cli/test_options.py
def test_bad_input_exits_2_with_one_message(capsys, args, message):
    assert main(["proxies", str(SPACE), "--dataset", "digits", "-n", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_space_whose_networks_do_not_fit_the_input(tmp_path, capsys):
    space = tmp_path / "patchify.yaml"
    space.write_text(SPACE.read_text().replace("stem: {type: conv, width: [8, 16], kernel_size: 3, stride: 1}",
                                               "stem: {type: patchify, width: 8, kernel_size: 4, stride: 4}"))
    assert main(["proxies", str(space), "--dataset", "digits", "-n", "1", "--img-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "at 1x2x2 inputs" in err and "the stem leaves 0 px" in err and err.count("\n") == 1
