"""The file boundary (archlab.core.yamlio): every refusal names the file, line and rule, in bounded time."""
from __future__ import annotations

import os
import time

import pytest

from archlab.core import yamlio
from archlab.core.errors import MAX_SHOWN, SpecError, shorten
from archlab.core.yamlio import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    load_data_file,
    load_json_text,
    load_yaml_file,
    load_yaml_text,
    parse_number,
    read_text_file,
)


def _refused(call, *args, seconds: float = 2.0, **kwargs) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as err:
        call(*args, **kwargs)
    assert time.perf_counter() - start < seconds
    return err.value


def test_an_empty_path_is_named_as_such():
    assert str(_refused(read_text_file, "")) == "path must name a file, got ''"


def test_special_files_are_refused_before_reading(tmp_path):
    err = _refused(read_text_file, "/dev/zero")
    assert str(err) == "/dev/zero: is not a regular file (a device, FIFO or socket); refusing to read it"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "is not a regular file" in str(_refused(load_yaml_file, fifo))   # no writer: it must not block
    assert str(_refused(load_yaml_file, tmp_path)) == f"{tmp_path}: is a directory, not a file"
    assert "cannot be read (No such file or directory)" in str(_refused(load_yaml_file, tmp_path / "nope.yaml"))


def test_the_size_cap_and_its_override(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * MAX_FILE_BYTES)
    err = _refused(load_yaml_file, big)
    assert f"over the input-file limit of {MAX_FILE_BYTES:,} bytes" in str(err) and "ARCHLAB_MAX_FILE_BYTES" in str(err)
    assert "xxx" not in str(err)
    monkeypatch.setenv("ARCHLAB_MAX_FILE_BYTES", str(2 * MAX_FILE_BYTES))
    assert len(load_yaml_file(big)["a"]) == MAX_FILE_BYTES
    monkeypatch.setenv("ARCHLAB_MAX_FILE_BYTES", "10")
    assert "limit of 10 bytes" in str(_refused(read_text_file, big))
    monkeypatch.setenv("ARCHLAB_MAX_FILE_BYTES", "lots")
    with pytest.raises(Exception, match="ARCHLAB_MAX_FILE_BYTES must be a positive number of bytes, got 'lots'"):
        read_text_file(big)


def test_non_utf8_bytes_are_refused_with_the_byte_offset_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: ok\nwidth: \xff\xfe\n")
    err = _refused(load_yaml_file, path)
    assert str(err) == f"{path}:2: is not UTF-8 text: byte 0xff at byte offset 16 cannot be decoded"
    path.write_bytes(b"\xef\xbb\xbfname: bom\n")   # a UTF-8 byte-order mark is fine
    assert load_yaml_file(path) == {"name": "bom"}


@pytest.mark.parametrize("text", [
    "[" * 200_000,                                                   # flow nesting
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),      # block nesting
    "a: " + "{b: " * 100 + "1" + "}" * 100,
])
def test_deep_nesting_is_refused_without_recursion_error(text):
    err = _refused(load_yaml_text, text, file="deep.yaml", seconds=15)   # 0.3 s on an idle core
    assert f"nests deeper than {MAX_DEPTH} levels" in str(err) and err.line is not None


def test_nesting_at_the_cap_loads():
    text = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert load_yaml_text(text) is not None
    assert load_json_text(text) is not None


def test_duplicated_keys_name_both_lines_and_the_key_path():
    err = _refused(load_yaml_text, "name: a\nstages:\n  - {width: 8,\n     width: 16}\n", file="s.yaml")
    assert str(err) == "s.yaml:4: stages[0].width is given twice (lines 3 and 4); a key may appear once"
    err = _refused(load_json_text, '{"stem": {"type": "conv",\n "type": "deep"}}', file="s.json")
    assert str(err) == "s.json:2: stem.type is given twice (lines 1 and 2); a key may appear once"
    assert load_yaml_text("base: &b {a: 1}\nx:\n  <<: *b\n  a: 2\n") == {"base": {"a": 1}, "x": {"a": 2}}


def test_alias_bombs_and_self_references_are_refused_quickly():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    assert "expands to more than 20,000 nodes" in str(_refused(load_yaml_text, "\n".join(lines)))
    assert "nests deeper than 64 levels (aliases included)" in str(_refused(load_yaml_text, "a: &a [*a, *a]"))
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 1500) + "]"
    assert "more than 1000 aliases" in str(_refused(load_yaml_text, many))


def test_a_file_of_too_many_values_stops_while_composing():
    text = "width: [" + ", ".join(map(str, range(yamlio.MAX_NODES + 5))) + "]\n"
    err = _refused(load_yaml_text, text, file="wide.yaml", seconds=20)   # PyYAML composes ~10k nodes a second
    assert f"holds more than {yamlio.MAX_NODES:,} values" in str(err) and err.line == 1
    assert len(load_yaml_text("width: [" + ", ".join(map(str, range(yamlio.MAX_NODES // 2))) + "]")["width"]) \
        == yamlio.MAX_NODES // 2


def test_numbers_too_long_to_read_and_json_constants():
    assert "cannot be read" in str(_refused(load_yaml_text, "width: " + "9" * 5000))
    assert "cannot be read" in str(_refused(load_json_text, '{"width": ' + "9" * 5000 + "}"))
    for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'):
        assert "which is not a JSON number" in str(_refused(load_json_text, text))
    assert "is not valid JSON" in str(_refused(load_json_text, '{"a": 1,,}', file="x.json"))


def test_control_characters_are_a_clear_error():
    # PyYAML's own text is two lines with a character offset ('in "<unicode string>", position 5'): one line here
    err = _refused(load_yaml_text, "a: 1\nb: x\x00y\n", file="nul.yaml")
    assert str(err) == "nul.yaml:2: is not valid YAML: it holds the control character U+0000, which YAML does not allow"
    err = _refused(load_yaml_text, "a: \x1b[31m\n", file="esc.yaml")
    assert str(err) == "esc.yaml:1: is not valid YAML: it holds the control character U+001B, which YAML does not allow"


def test_data_files_are_read_by_their_suffix(tmp_path):
    (tmp_path / "a.json").write_text('{"a": [1, 2]}')
    (tmp_path / "a.yaml").write_text("a: [1, 2]\n")
    assert load_data_file(tmp_path / "a.json") == load_data_file(tmp_path / "a.yaml") == {"a": [1, 2]}
    (tmp_path / "b.json").write_text("a: 1")   # YAML in a .json file is not JSON
    assert "is not valid JSON" in str(_refused(load_data_file, tmp_path / "b.json"))


def test_parse_number_refuses_nan_infinity_and_huge_values():
    assert parse_number("600M", "x") == 600_000_000 and parse_number("1e-6", "x") == 1e-6
    for bad in (float("nan"), float("inf"), "nan", "inf", "-inf", 10 ** 400, "1e400", True, [1], "9" * 100):
        with pytest.raises(SpecError):
            parse_number(bad, "constraints.macs.max")


def test_messages_never_quote_more_than_the_cap_of_user_data(tmp_path):
    secret = "S" * 10_000
    err = SpecError("name", "must be short", secret, file="f.yaml", line=1)
    assert len(str(err)) < MAX_SHOWN + 100 and "more characters" in str(err)
    assert shorten("x" * 50) == "x" * 50
    path = tmp_path / "bad.yaml"
    path.write_text(f"key: [{secret}\n")   # a syntax error mid-file: the message has no file contents
    assert secret[:20] not in str(_refused(load_yaml_file, path))
    assert repr(SpecError("w", "r", 10 ** 5000)).count("digits") == 1   # not an int-conversion crash


def test_the_boundary_constants_are_stated_in_the_docs():
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "search_spaces.md")).read()
    for figure in (f"{MAX_FILE_BYTES:,}", "ARCHLAB_MAX_FILE_BYTES", f"{yamlio.MAX_DEPTH}", f"{yamlio.MAX_NODES:,}"):
        assert figure in text
