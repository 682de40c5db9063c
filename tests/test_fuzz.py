"""Property-based fuzzing of every file-reading CLI entry point (issue 14): malformed spaces, studies, ladders
and specs, made by mutating every shipped file and by writing bytes at random, run in-process through
`archlab.cli.main.main`. The property: exit 0 or 2, no traceback, bounded time and memory, and no more than
200 characters of the file quoted in an error.

The default run makes about 60 s of cases; ARCHLAB_FUZZ_SCALE=10 makes ten times as many. Hypothesis is
derandomized (the same cases every run) and keeps no example database in the tree. The number of cases per
entry point is printed at the end of the run (pytest's terminal summary).
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import resource
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archlab.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("ARCHLAB_FUZZ_SCALE", "1"))
CASE_SECONDS = 30          # per case; the slowest clean case takes well under a second once imports are warm
CASE_MEMORY_KB = 1 << 20   # 1 GiB more peak memory than before the case
SHOWN = 200                # characters of a file an error may quote
SECRET = "# never-echo " + "k3y" * 100   # a comment line: no message may ever print it
CASES: Counter[str] = Counter()

SPACES = sorted((ROOT / "search_spaces").glob("*.yaml")) + [ROOT / "tests" / "data" / "tiny_space.yaml"]
STUDIES = sorted((ROOT / "studies").glob("*.yaml")) + [ROOT / "tests" / "data" / "tiny_study.yaml"]
SPEC_NAMES = ("resnet18", "mobilenet_v2", "convnext_tiny", "efficientnet_b0")


def _examples(n: int) -> int:
    return max(1, int(n * SCALE))


def _settings(n: int) -> settings:
    return settings(max_examples=_examples(n), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


class _CaseTimeout(Exception):
    """A case ran past CASE_SECONDS (raised by SIGALRM inside the command)."""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A copy of the shipped files in their layout, so a study's `space: ../search_spaces/...` still resolves;
    the commands are run once here first so imports (torch) do not count against a case's time."""
    root = tmp_path_factory.mktemp("fuzz")
    for folder in ("search_spaces", "studies"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copytree(ROOT / "tests" / "data", root / "data")
    for argv in (["validate", str(root / "search_spaces" / "mobile.yaml")], ["show", "resnet18"],
                 ["validate", str(root / "studies" / "convnext_ablation.yaml")]):
        assert main(argv) == 0
    return root


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    line = "fuzz cases per entry point: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():   # shown in the run's output, not swallowed by capture
            print("\n" + line)
    else:
        print(line)


def _where(path: Path, work: Path) -> Path:
    """Where the mutated copy of a shipped file goes (beside its original, so relative paths resolve)."""
    if path.parent.name == "data":
        return work / "data" / f"_fuzz_{path.name}"
    return work / path.parent.name / f"_fuzz_{path.name}"


def _alarm(signum: int, frame: Any) -> None:
    raise _CaseTimeout(f"a case ran past {CASE_SECONDS} s")


def _check(capsys, argv: list[str], text: str, entry: str) -> None:
    """Run one command in-process and assert the property."""
    capsys.readouterr()
    CASES[entry] += 1
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    assert code in (0, 2), f"{argv}: exit {code}\n{err[-2000:]}"
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < CASE_MEMORY_KB, f"{argv}: peak memory grew by {grown / 1024:.0f} MB"
    assert SECRET not in out + err
    if code == 2:
        assert err.strip(), f"{argv}: exit 2 without a message"
        for start in range(0, max(1, len(err) - SHOWN), 20):
            chunk = err[start:start + SHOWN + 1]
            assert len(chunk) <= SHOWN or chunk not in text, f"{argv}: the error quotes the file: {chunk!r}"


# --- value mutations on the parsed document ---------------------------------------------------------------

BAD_VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10 ** 30, 10 ** 400, -1, 0, 1e-12, 1e308, "", "x" * 500,
                     [], {}, None, True, False, "$nope", "600G", "-5M", "1e400", ".nan", [[[[[[1]]]]]],
                     {"low": 1, "high": 10 ** 9}, {"low": 0.0, "high": 1.0, "step": 1e-12},
                     {"choices": []}, {"when": {"nope": 1}, "value": 1}, [math.nan, 1], "resnet50", 7.5]),
    st.integers(min_value=-(10 ** 20), max_value=10 ** 20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-3, max_value=300), max_size=4),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a parsed document (mapping keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """One to three mutations: replace a value, delete a key, or swap a value's type."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(doc)
        if not paths:
            return copy.deepcopy(data.draw(BAD_VALUES))
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        kind = data.draw(st.sampled_from(["replace", "replace", "delete", "wrap", "stringify", "deepen"]),
                         label="kind")
        if kind == "delete":
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        elif kind == "wrap":
            parent[key] = [parent[key]] if data.draw(st.booleans()) else {"value": parent[key]}
        elif kind == "stringify":
            parent[key] = str(parent[key])
        elif kind == "deepen":
            value = parent[key]
            for _ in range(data.draw(st.integers(10, 80), label="depth")):
                value = [value]
            parent[key] = value
        else:
            # a copy: the strategy's lists and dicts are shared between cases, and later mutations edit in place
            parent[key] = copy.deepcopy(data.draw(BAD_VALUES, label="value"))
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True) + SECRET + "\n"


def _space_commands(path: Path) -> list[tuple[str, list[str]]]:
    return [("validate", ["validate", str(path)]),
            ("space describe", ["space", "describe", str(path)]),
            ("space sample", ["space", "sample", str(path), "-n", "2", "--img-size", "32"])]


@_settings(40)
@given(data=st.data())
def test_mutated_spaces(work, capsys, data):
    source = data.draw(st.sampled_from(SPACES), label="space")
    text = _dump(_mutate(yaml.safe_load(source.read_text()), data))
    target = _where(source, work)
    target.write_text(text)
    name, argv = data.draw(st.sampled_from(_space_commands(target)), label="command")
    _check(capsys, argv, text, name)


@_settings(40)
@given(data=st.data())
def test_mutated_studies_and_ladders(work, capsys, data):
    source = data.draw(st.sampled_from(STUDIES), label="study")
    text = _dump(_mutate(yaml.safe_load(source.read_text()), data))
    target = _where(source, work)
    target.write_text(text)
    _check(capsys, ["validate", str(target)], text, "validate (study/ladder)")


@_settings(30)
@given(data=st.data())
def test_mutated_specs(work, capsys, data):
    from archlab.arch.zoo import get_spec
    doc = get_spec(data.draw(st.sampled_from(SPEC_NAMES), label="spec")).to_dict()
    mutated = _mutate(doc, data)
    if data.draw(st.booleans(), label="json"):
        target, text = work / "_fuzz_spec.json", json.dumps(mutated, indent=1, default=str)  # NaN written as NaN
    else:
        target, text = work / "_fuzz_spec.yaml", _dump(mutated)
    target.write_text(text)
    _check(capsys, ["show", str(target)], text, "show (spec)")


# --- text and byte mutations ------------------------------------------------------------------------------

def _text_mutation(raw: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["bytes", "duplicate-line", "truncate", "nest", "number", "alias-bomb"]),
                     label="text mutation")
    lines = raw.split(b"\n")
    if kind == "bytes":
        at = data.draw(st.integers(0, len(raw)), label="at")
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=16), label="bytes") + raw[at:]
    if kind == "duplicate-line":
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        return b"\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "truncate":
        return raw[:data.draw(st.integers(0, len(raw)), label="cut")]
    if kind == "nest":
        depth = data.draw(st.integers(50, 5000), label="depth")
        return raw + b"\nextra: " + b"[" * depth + b"1" + b"]" * depth + b"\n"
    if kind == "number":
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        word = data.draw(st.sampled_from([b"1e400", b".nan", b"-.inf", b"9" * 40, b"9" * 5000, b"0x7fffffff"]))
        lines[i] = re.sub(rb"\d+(\.\d+)?", lambda _: word, lines[i], count=1) if re.search(rb"\d", lines[i]) \
            else lines[i] + b" " + word
        return b"\n".join(lines)
    bomb = [b'z0: &z0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for j in range(1, 9):
        bomb.append(b"z%d: &z%d [" % (j, j) + b", ".join([b"*z%d" % (j - 1)] * 8) + b"]")
    return raw + b"\n" + b"\n".join(bomb) + b"\n"


@_settings(50)
@given(data=st.data())
def test_mutated_bytes_of_every_shipped_file(work, capsys, data):
    source = data.draw(st.sampled_from(SPACES + STUDIES), label="file")
    raw = _text_mutation(source.read_bytes(), data) + b"\n" + SECRET.encode() + b"\n"
    target = _where(source, work)
    target.write_bytes(raw)
    text = raw.decode("utf-8", "replace")
    if source in SPACES:
        name, argv = data.draw(st.sampled_from(_space_commands(target)), label="command")
    else:
        name, argv = "validate (study/ladder)", ["validate", str(target)]
    _check(capsys, argv, text, name)


@_settings(20)
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".yaml", ".json"]))
def test_random_bytes(work, capsys, raw, suffix):
    target = work / f"_fuzz_random{suffix}"
    target.write_bytes(raw)
    text = raw.decode("utf-8", "replace")
    _check(capsys, ["validate", str(target)] if suffix == ".yaml" else ["show", str(target)], text,
           "validate" if suffix == ".yaml" else "show (spec)")


def test_special_files_and_a_large_file(work, capsys, tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: " + b"x" * (50 << 20))   # 50 MB: refused by its size, not read
    for path in ("/dev/zero", str(fifo), str(tmp_path), str(big)):
        for name, argv in _space_commands(Path(path)) + [("show (spec)", ["show", path])]:
            _check(capsys, argv, "x" * 300, name)
