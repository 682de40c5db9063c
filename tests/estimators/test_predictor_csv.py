"""Latency tables measured on another device import from CSV (`archlab predictor fit SPACE --from-csv FILE`):
the worked example of docs/estimators.md fits as documented, and a bad table is one message naming the file,
the line, the column and the value, exit 2, with no predictor file written."""
from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest

from archlab.cli.main import main
from archlab.estimators.latency_fit import load_space_file, sample_networks
from archlab.estimators.latency_model import load_predictor
from archlab.nn.complexity import complexity

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "estimators.md"
SPACE = REPO / "tests" / "data" / "tiny_space.yaml"


def _doc_example() -> tuple[str, list[list[str]], list[str]]:
    """The CSV import section's worked example: the table, and the commands that use it."""
    section = DOC.read_text().split("**CSV import**", 1)[1].split("**Evaluation**", 1)[0]
    table = re.search(r"```csv\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    argv = [shlex.split(line.split("#")[0]) for line in commands.strip().splitlines()]
    errors = re.search(r"```text\n(.*?)```", section, re.S).group(1).strip().splitlines()
    return table, argv, errors


@pytest.mark.parametrize("bom", [False, True])
def test_the_documented_example_fits_as_documented(tmp_path, capsys, monkeypatch, bom):
    table, commands, _ = _doc_example()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "mobile.yaml").write_text((REPO / "search_spaces" / "mobile.yaml").read_text())
    # a spreadsheet's export starts with a byte-order mark; the header must still read as latency_ms, spec, ...
    (tmp_path / "phone.csv").write_text(("\ufeff" if bom else "") + table, encoding="utf-8")
    fit, predict = commands
    assert fit[:3] == ["archlab", "predictor", "fit"] and predict[:3] == ["archlab", "predictor", "predict"]
    assert main(fit[1:]) == 0
    capsys.readouterr()
    pred = load_predictor("phone.json", device="pixel-4 big core", threads=4)
    t = pred.target
    assert (t["device_name"], t["batch"], t["img_size"], t["in_chans"], t["num_classes"]) == \
        ("pixel-4 big core", 1, 224, 3, 1000)
    assert t["backend"] == t["stack"] == "unknown (imported)" and pred.kinds == ("linear", "gbm")
    fitted = pred.data["fit"]
    assert fitted["n"] == 5 and fitted["skipped_rows"] == 0
    assert fitted["source"] == f"csv {(tmp_path / 'phone.csv').resolve()}"
    rows = list(csv.DictReader(table.splitlines()))
    assert [r["latency_ms"] for r in pred.data["train"]] == [float(r["latency_ms"]) for r in rows]
    assert main(predict[1:] + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["name"] == "mobilenet_v3_large" and out[0]["linear_ms"] > 0 and out[0]["gbm_ms"] > 0


def _refused(capsys, table: Path, *needles: str, space: Path = SPACE, extra: tuple[str, ...] = ()) -> str:
    out = table.with_suffix(".json")
    assert main(["predictor", "fit", str(space), "--from-csv", str(table), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"archlab: error: {table}: "), err
    for needle in needles:
        assert needle in err, err
    assert not out.exists()
    return err


def _specs(n: int = 4) -> list[str]:
    """`n` networks of the tiny space as one-line JSON (so a row is one line of the file)."""
    return [json.dumps(json.loads(s.to_json())) for s in sample_networks(load_space_file(SPACE)[0], n, seed=5)]


def _write(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_bad_cells_name_the_file_line_column_and_value(tmp_path, capsys):
    specs = _specs()
    header = ["spec", "latency_ms", "device"]
    good = [[s, 1.0 + i, "phone"] for i, s in enumerate(specs)]
    _refused(capsys, _write(tmp_path / "nonnumeric.csv", [header, good[0], [specs[1], "fast", "phone"]]),
             ": line 3: latency_ms must be a positive number of milliseconds, got 'fast'")
    _refused(capsys, _write(tmp_path / "zero.csv", [header, [specs[0], "0", "phone"], *good]),
             ": line 2: latency_ms must be a positive number", "got '0'")
    _refused(capsys, _write(tmp_path / "unknown.csv", [header, ["resnet19", 3.0, "phone"], *good]),
             ": line 2: column 'spec' must hold an ArchSpec as JSON or a zoo network name",
             "unknown zoo network 'resnet19'", "did you mean 'resnet18'?", "got 'resnet19'")
    _refused(capsys, _write(tmp_path / "notspec.csv", [header, *good[:2], ['{"stem": 1}', 3.0, "phone"]]),
             ": line 4: column 'spec'", "stem must be a mapping", """got '{"stem": 1}'""")
    _refused(capsys, _write(tmp_path / "empty_spec.csv", [header, ["", 3.0, "phone"]]),
             ": line 2: column 'spec'", "is empty")
    err = _refused(capsys, _write(tmp_path / "list_spec.csv", [header, ["[1, 2]", 3.0, "phone"]]),
                   ": line 2: column 'spec'", "(a JSON cell must be an object, {...}), got '[1, 2]'")
    assert "resnet18" not in err   # was "unknown zoo network '[1, 2]' (valid: alexnet, ...)", the whole zoo


def test_rows_of_the_wrong_length_and_missing_columns(tmp_path, capsys):
    specs = _specs()
    _refused(capsys, _write(tmp_path / "short.csv", [["spec", "latency_ms", "device"], [specs[0], 1.0, "phone"],
                                                      [specs[1], 2.0]]),
             ": line 3: column 'device' is missing (the row has 2 cells, the header names 3 columns)")
    _refused(capsys, _write(tmp_path / "long.csv", [["spec", "latency_ms", "device"], [specs[0], 1.0, "phone", 7]]),
             ": line 2: has 4 cells, but the header names 3 columns")
    _refused(capsys, _write(tmp_path / "nolatency.csv", [["spec", "device"], [specs[0], "phone"]]),
             "has no 'latency_ms' column", "columns: device, spec")
    _refused(capsys, _write(tmp_path / "nodevice.csv", [["spec", "latency_ms"], [specs[0], 1.0]]),
             "has no 'device' column", "--device-name")
    _refused(capsys, _write(tmp_path / "nonetwork.csv", [["latency_ms", "device", "top1"], [1.0, "phone", 50]]),
             "has no 'spec' column and none of the space's parameter columns", "stem.width",
             "columns: device, latency_ms, top1")
    _refused(capsys, _write(tmp_path / "threads.csv", [["spec", "latency_ms", "device", "threads"],
                                                        [specs[0], 1.0, "phone", 4], [specs[1], 2.0, "phone", 2]]),
             "column threads must hold one whole number >= 1 on every row", "['2', '4']")
    (tmp_path / "header_only.csv").write_text("spec,latency_ms,device\n")
    _refused(capsys, tmp_path / "header_only.csv", "holds no rows")
    _refused(capsys, _write(tmp_path / "few.csv", [["spec", "latency_ms", "device"], [specs[0], 1.0, "phone"]]),
             "needs at least 4 rows with a latency to fit, got 1")


def test_a_repeated_column_an_absurd_latency_and_two_device_names_are_refused(tmp_path, capsys):
    specs = _specs()
    good = [[s, 1.0 + i, "phone"] for i, s in enumerate(specs)]
    # DictReader kept the second latency_ms column: the error was "needs at least 4 rows", or a fit on the wrong one
    _refused(capsys, _write(tmp_path / "twice.csv", [["spec", "latency_ms", "device", "latency_ms"],
                                                     *[[*row, 2.0] for row in good]]),
             ": line 1: column 'latency_ms' is named twice in the header")
    _refused(capsys, _write(tmp_path / "huge.csv", [["spec", "latency_ms", "device"], *good[:2],
                                                    [specs[2], "1e308", "phone"], *good[3:]]),
             ": line 4: latency_ms must be at most 10,000,000 ms (a unit error?), got '1e308'")
    _refused(capsys, _write(tmp_path / "devices.csv", [["spec", "latency_ms", "device"], *good]),
             "column device says 'phone', but --device-name says 'tablet': give the device once",
             extra=("--device-name", "tablet"))


def test_parameter_columns_name_the_column_as_the_table_spells_it(tmp_path, capsys):
    drawn = load_space_file(SPACE)[0].sample(4, seed=2)
    names = sorted(drawn[0][0])
    header = [f"params_{k}" for k in names] + ["latency_ms"]
    rows = [[json.dumps(p[k]) for k in names] + [0.1 + complexity(s).macs / 1e6] for p, s in drawn]
    bad = [list(r) for r in rows]
    bad[2][names.index("stem.width")] = "12"
    err = _refused(capsys, _write(tmp_path / "trials.csv", [header, *bad]),
                   ": line 4: column 'params_stem.width' must be one of {8, 16}, got 12",
                   extra=("--device-name", "cpu"))
    assert "params.stem.width" not in err
    # a parameter cell left empty: named as the table spells its column
    gap = [list(r) for r in rows]
    gap[0][names.index("head.conv_width")] = ""
    _refused(capsys, _write(tmp_path / "gap.csv", [header, *gap]),
             ": line 2: column 'params_head.conv_width' is missing: this point needs it", "{32, 64}",
             extra=("--device-name", "cpu"))
    # a parameter no column holds: named as the space names it
    cut = [r[:names.index("head.conv_width")] + r[names.index("head.conv_width") + 1:] for r in [header, *rows]]
    _refused(capsys, _write(tmp_path / "cut.csv", cut),
             ": line 2: column 'head.conv_width' is missing: this point needs it", extra=("--device-name", "cpu"))
    # the good table fits: every cell read as the space's value
    out = tmp_path / "good.json"
    assert main(["predictor", "fit", str(SPACE), "--from-csv", str(_write(tmp_path / "good.csv", [header, *rows])),
                 "--device-name", "cpu", "--out", str(out)]) == 0
    assert [r["arch_id"] for r in load_predictor(out).data["train"]] == [s.arch_id for _, s in drawn]


def test_a_quoted_cell_over_several_lines_keeps_the_line_numbers_of_the_file(tmp_path, capsys):
    # specs pretty-printed over several lines: an error points at the line its row starts on in an editor
    specs = [json.dumps(json.loads(s), indent=1) for s in _specs(2)]
    table = _write(tmp_path / "pretty.csv", [["spec", "latency_ms", "device"], [specs[0], 1.0, "phone"],
                                             [specs[1], "-3", "phone"]])
    lines = table.read_text().splitlines()
    start = 1 + next(i for i, line in enumerate(lines) if i > 1 and line.startswith('"{'))
    assert start > 3   # the first row spans several lines
    _refused(capsys, table, f": line {start}: latency_ms must be a positive number", "got '-3'")


def test_the_documented_error_lines_are_the_ones_archlab_prints(tmp_path, capsys):
    # the doc's first two examples, reproduced from the worked example's table
    table, _, errors = _doc_example()
    lines = table.strip().splitlines()
    fast = tmp_path / "phone.csv"
    fast.write_text("\n".join([lines[0], lines[1], lines[2].replace("92.4", "fast"), *lines[3:]]) + "\n")
    err = _refused(capsys, fast, space=REPO / "search_spaces" / "mobile.yaml", extra=("--img-size", "224"))
    assert err.strip().endswith(errors[0].removeprefix("phone.csv: ")), (err, errors[0])
    fast.write_text("\n".join([lines[0], lines[1].replace("resnet18", "resnet19"), *lines[2:]]) + "\n")
    err = _refused(capsys, fast, space=REPO / "search_spaces" / "mobile.yaml", extra=("--img-size", "224"))
    assert err.strip().endswith(errors[1].removeprefix("phone.csv: ")), (err, errors[1])
