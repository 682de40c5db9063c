"""Every numeric and path option is checked by argparse (archlab.cli.options): exit 2 before any work."""
from __future__ import annotations

import pytest

from archlab.cli import options
from archlab.cli.main import main

STUDY = "studies/mobile_frontier.yaml"
SPACE = "search_spaces/mobile.yaml"


@pytest.mark.parametrize("argv, words", [
    (["search", STUDY, "--trials", "0"], "argument --trials: must be a number of trials in [1, 1,000,000], got 0"),
    (["search", STUDY, "--trials", "2.5"], "argument --trials: must be a number of trials, got '2.5'"),
    (["search", STUDY, "--timeout", "0"], "argument --timeout: must be in (0, "),
    (["search", STUDY, "--timeout", "-5"], "argument --timeout: must be in (0, "),
    (["search", STUDY, "--timeout", "nan"], "argument --timeout: must be a finite number, got 'nan'"),
    (["search", STUDY, "--timeout", "inf"], "argument --timeout: must be a finite number, got 'inf'"),
    (["search", STUDY, "--concurrent", "0"], "argument --concurrent:"),
    (["search", STUDY, "--out", STUDY], "argument --out: names an existing file, not a folder"),
    (["space", "sample", SPACE, "-n", "0"], "argument -n: must be a number of samples in [1, 100,000], got 0"),
    (["space", "sample", SPACE, "-n", "1000000000"], "got 1000000000"),
    (["space", "sample", SPACE, "--seed", "-1"], "argument --seed: must be a seed in [0, 4,294,967,295], got -1"),
    (["space", "describe", SPACE, "--img-size", "0"], "argument --img-size: must be an image side in pixels"),
    (["space", "describe", SPACE, "--num-classes", "1e400"], "argument --num-classes: must be a number of classes"),
    (["show", "resnet18", "--img-size", "100000"], "argument --img-size:"),
    (["train", "resnet18", "--epochs", "nan"], "argument --epochs: must be a finite number, got 'nan'"),
    (["train", "resnet18", "--epochs", "0"], "argument --epochs: must be in (0, "),
    (["train", "resnet18", "--seconds", "-1"], "argument --seconds:"),
    (["train", "resnet18", "--limit", "0"], "argument --limit:"),
    (["latency", "resnet18", "--batch", "0"], "argument --batch: must be a batch size"),
    (["proxies", SPACE, "-n", "0"], "argument -n: must be a number of samples in [1, 100,000], got 0"),
    (["proxies", SPACE, "-n", "1000000000"], "argument -n: must be a number of samples in [1, 100,000]"),
    (["proxies", SPACE, "--img-size", "0"], "argument --img-size: must be an image side in pixels"),
    (["proxies", SPACE, "--seed", "-1"], "argument --seed: must be a seed in [0, 4,294,967,295], got -1"),
    (["proxies", SPACE, "--seed", str(2 ** 70)], "argument --seed: must be a seed in [0, 4,294,967,295]"),
    (["proxies", SPACE, "--img-size", "100000"], "argument --img-size: must be an image side in pixels"),
    (["proxies", SPACE, "--batch-size", "1"], "argument --batch-size: must be a minibatch size in [2, 65,536]"),
    (["latency", "resnet18", "--max-seconds", "inf"], "argument --max-seconds: must be a finite number"),
    (["ablate", "studies/convnext_ablation.yaml", "--seeds", "0"], "argument --seeds:"),
    (["ablate", "studies/convnext_ablation.yaml", "--out", STUDY], "argument --out: names an existing file"),
    (["report", "runs", "--out", "studies"], "argument --out: names an existing folder, not a file"),
    (["report", "runs", "--out", "README.md/r.html"], "argument --out: cannot be created: "),
    (["predictor", "fit", SPACE, "-n", "4", "--out", "README.md/sub/p.json"], "README.md' is a file, not a folder"),
    (["search", STUDY, "--out", "README.md/run"], "argument --out: cannot be created: "),
    (["ablate", "studies/convnext_ablation.yaml", "--out", "pyproject.toml/x/y"], "is a file, not a folder"),
])
def test_bad_options_exit_2_with_one_message(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_the_checkers_accept_what_is_in_range():
    assert options.trials("3") == 3 and options.seed("4294967295") == 2 ** 32 - 1
    assert options.positive_seconds("1e-3") == 1e-3 and options.epochs("0.5") == 0.5
    assert options.samples(str(options.MAX_SAMPLES)) == options.MAX_SAMPLES
    assert options.out_dir("runs/new-folder") == "runs/new-folder"


def test_output_paths_below_missing_folders_are_accepted_and_unwritable_places_refused(tmp_path):
    """Missing folders are the writer's to create; a folder this process cannot write in is refused up front."""
    import os
    assert options.new_file(str(tmp_path / "a" / "b" / "p.json")) == str(tmp_path / "a" / "b" / "p.json")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):   # root writes anywhere: nothing to refuse
        pytest.skip("running as a user that can write in a read-only folder")
    with pytest.raises(Exception, match="no permission to write in"):
        options.new_file(str(locked / "p.json"))


@pytest.mark.parametrize("command", [["report", "runs"], ["predictor", "fit", SPACE, "-n", "4"]])
def test_an_output_that_is_a_fifo_is_refused_before_any_work(command, tmp_path, capsys):
    """A device, FIFO or socket as --out (a FIFO here: a regression must not replace a real device)."""
    import os
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit) as exc:
        main([*command, "--out", str(fifo)])
    assert exc.value.code == 2
    assert "argument --out: names a device, FIFO or socket, not a file" in capsys.readouterr().err
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
