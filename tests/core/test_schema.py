"""archlab.core.schema: every supported type hint, every error shape (file, line, key path, rule, value), bounds,
finite numbers, round trips, and the records made in code obeying the same limits."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml

from archlab.core.errors import SpecError
from archlab.core.schema import MAX_INT, Range, Schema, check_plain, internal, line_map, line_of


@dataclass(frozen=True, slots=True)
class Inner(Schema):
    """A nested record with a required key."""

    size: Annotated[int, Range(gt=0, le=2 ** 16)]
    ratio: Annotated[float, Range(ge=0, lt=1)] = 0.5


@dataclass(frozen=True, slots=True)
class Outer(Schema):
    """One field of every kind the reader knows."""

    name: str
    count: int = 1
    rate: float = 0.1
    flag: bool = False
    where: Path = Path("x.yaml")
    mode: Literal["fast", "slow"] = "fast"
    sizes: tuple[Annotated[int, Range(ge=1, le=100)], ...] = ()
    pair: tuple[int, str] = (1, "a")
    inner: Inner = field(default_factory=lambda: Inner(size=8))
    maybe: Annotated[int, Range(ge=0, le=10)] | None = None
    either: str | dict[str, Any] = "plain"
    table: dict[str, float] = field(default_factory=dict)
    limits: dict[Literal["max_macs", "max_params"], Annotated[float, Range(ge=0)]] = field(default_factory=dict)
    free: Any = None
    file: str | None = internal()


def read(data: dict[str, Any], **kw: Any) -> Outer:
    return Outer.from_dict({"name": "n", **data}, **kw)


def error(data: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(SpecError) as err:
        read(data, **kw)
    return str(err.value)


# --- every type ----------------------------------------------------------------------------------------------

def test_every_type_is_read_and_round_trips():
    data = {"name": "n", "count": 3, "rate": 2, "flag": True, "where": "a/b.yaml", "mode": "slow", "sizes": [1, 2],
            "pair": [4, "z"], "inner": {"size": 16, "ratio": 0.25}, "maybe": None, "either": {"base": "x"},
            "table": {"a": 1}, "limits": {"max_macs": "600M"}, "free": {"k": [1, 2.5, "s"]}}
    rec = Outer.from_dict(data)
    assert rec.rate == 2.0 and isinstance(rec.rate, float)            # an int where a float goes is a float
    assert rec.where == Path("a/b.yaml") and rec.sizes == (1, 2) and rec.pair == (4, "z")
    assert rec.inner == Inner(size=16, ratio=0.25) and rec.either == {"base": "x"}
    assert rec.table == {"a": 1.0} and rec.limits == {"max_macs": 600e6}
    again = Outer.from_dict(rec.to_dict())
    assert again == rec
    assert yaml.safe_load(rec.to_yaml()) == rec.to_dict()
    assert json.loads(json.dumps(rec.to_dict())) == rec.to_dict()     # plain data only


def test_numbers_written_as_yaml_1_1_strings_are_read():
    # PyYAML reads 4e-3 (no dot) as a string; archlab files also write sizes as 600M
    assert read({"rate": "4e-3"}).rate == pytest.approx(0.004)
    assert read({"count": "1e3"}).count == 1000
    assert read({"limits": {"max_params": "2.5M"}}).limits["max_params"] == 2.5e6
    assert "count must be an integer, got '64'" in error({"count": "64"})   # a quoted plain number is a mistake
    assert "count must be an integer, got 2.5" in error({"count": 2.5})
    assert read({"count": 2.0}).count == 2


def test_internal_fields_are_neither_read_nor_written_and_file_is_filled_in():
    assert "file is not a known key" in error({"file": "x"})
    rec = read({}, file="where.yaml")
    assert rec.file == "where.yaml" and "file" not in rec.to_dict()


# --- every error shape ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, expected", [
    ({"count": True}, "count must be an integer, got True"),             # booleans are not integers
    ({"rate": True}, "rate must be a number, got True"),
    ({"rate": "fast"}, "rate must be a number, got 'fast'"),
    ({"flag": 1}, "flag must be true or false, got 1"),
    ({"name": ["a", "b"]}, "name must be a string, got a list"),        # a list where a string goes
    ({"name": {"a": 1}}, "name must be a string, got a mapping"),
    ({"where": 3}, "where must be a path"),
    ({"mode": "fats"}, "mode must be fast or slow (did you mean 'fast'?), got 'fats'"),
    ({"mode": ["fast"]}, "mode must be fast or slow"),
    ({"sizes": 3}, "sizes must be a list, got 3"),
    ({"sizes": [1, 200]}, "sizes[1] must be <= 100, got 200"),
    ({"pair": [1]}, "pair must be a list of 2 items"),
    ({"pair": [1, 2]}, "pair[1] must be a string, got an integer"),
    ({"inner": {"size": 0}}, "inner.size must be > 0, got 0"),
    ({"inner": {"sise": 3}}, "inner.sise is not a known key (did you mean 'size'?)"),
    ({"inner": {}}, "inner is missing required key(s) size"),
    ({"inner": [1]}, "inner must be a mapping, got a list"),
    ({"inner": {"size": 1, "ratio": 1.0}}, "inner.ratio must be < 1, got 1.0"),
    ({"maybe": -1}, "maybe must be >= 0, got -1"),
    ({"maybe": 11}, "maybe must be <= 10, got 11"),
    ({"either": 5}, "either must be a string, got an integer"),
    ({"table": [1]}, "table must be a mapping, got a list"),
    ({"table": {"a": "x"}}, "table.a must be a number, got 'x'"),
    ({"limits": {"max_flops": 1}}, "limits.max_flops is not a known key (archlab counts multiply-accumulates"),
    ({"limits": {"max_macs": -1}}, "limits.max_macs must be >= 0, got -1"),
    ({"cuont": 1}, "cuont is not a known key (did you mean 'count'?)"),
])
def test_errors_name_key_path_rule_and_value(change, expected):
    assert expected in error(change)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, ".nan", ".inf"])
def test_numbers_must_be_finite(value):
    value = yaml.safe_load(value) if isinstance(value, str) else value
    assert "rate must be a finite number" in error({"rate": value})
    assert "inner.ratio must be a finite number" in error({"inner": {"size": 1, "ratio": value}})
    assert "table.a must be a finite number" in error({"table": {"a": value}})
    assert "free.k[1] must be a finite number" in error({"free": {"k": [1, value]}})
    assert "count must be a finite number" in error({"count": value}) or "must be an integer" in error(
        {"count": value})


@pytest.mark.parametrize("value", [10 ** 30, 10 ** 400, -(10 ** 400)])
def test_huge_integers_are_errors_not_overflows(value):
    assert "inner.size must be" in error({"inner": {"size": value}})
    assert f"count must be at most {MAX_INT:.3g} in size" in error({"count": value})
    assert "rate must be a number at most" in error({"rate": value})   # float(10**400) would overflow
    message = error({"inner": {"size": value}})
    assert len(message) < 300                                          # the value is shortened


def test_a_missing_required_key_and_a_non_mapping_document():
    with pytest.raises(SpecError, match=r"Outer is missing required key\(s\) name"):
        Outer.from_dict({})
    secret = "password=hunter2 " * 50
    with pytest.raises(SpecError) as err:
        Outer.from_dict(secret, file="x.yaml")
    assert "must be a mapping, got a string" in str(err.value) and "hunter2" not in str(err.value)


def test_file_and_line_are_named(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("name: n\ninner:\n  size: 3\n  ratio: .nan\nsizes: [1, 2, 300]\n")
    with pytest.raises(SpecError) as err:
        Outer.load(path)
    assert str(err.value) == f"{path}:4: inner.ratio must be a finite number, got nan"
    path.write_text("name: n\ncount: 2\nsizes:\n  - 1\n  - 300\n")
    with pytest.raises(SpecError, match=rf"^{path}:5: sizes\[1\] must be <= 100, got 300$"):
        Outer.load(path)
    path.write_text("name: n\nunknown: 1\n")
    with pytest.raises(SpecError, match=rf"^{path}:2: unknown is not a known key"):
        Outer.load(path)


def test_data_read_elsewhere_still_gets_the_line_from_its_file(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("name: n\n\ncount: 1.5\n")
    with pytest.raises(SpecError, match=rf"^{path}:3: count must be an integer, got 1.5$"):
        Outer.from_dict(yaml.safe_load(path.read_text()), file=path)
    with pytest.raises(SpecError, match=rf"^{tmp_path / 'gone.yaml'}: count must be an integer"):
        Outer.from_dict({"name": "n", "count": 1.5}, file=tmp_path / "gone.yaml")   # no file: no line


def test_json_files_name_the_line_too(tmp_path):
    path = tmp_path / "rec.json"
    path.write_text('{\n  "name": "n",\n  "inner": {\n    "size": 1e30\n  }\n}\n')
    with pytest.raises(SpecError, match=rf"^{path}:4: inner.size must be <= 65536"):
        Outer.load(path)


def test_line_of_falls_back_to_the_enclosing_key():
    lines = line_map("a:\n  b:\n    - x: 1\n    - y: 2\nc: 3\n")
    assert lines == {"a": 1, "a.b": 2, "a.b[0]": 3, "a.b[0].x": 3, "a.b[1]": 4, "a.b[1].y": 4, "c": 5}
    assert line_of(lines, "a.b[1].z.w") == 4 and line_of(lines, "q") is None
    assert line_map("a: [unclosed\n") == {}


# --- records made in code obey the same limits -------------------------------------------------------------------

def test_records_made_in_code_are_checked_and_normalised():
    rec = read({})
    with pytest.raises(SpecError, match="rate must be a finite number"):
        replace(rec, rate=math.nan)
    with pytest.raises(SpecError, match="maybe must be <= 10"):
        replace(rec, maybe=10 ** 400)
    with pytest.raises(SpecError, match="mode must be fast or slow"):
        replace(rec, mode="medium")
    with pytest.raises(SpecError, match="size must be > 0"):
        Inner(size=0)
    with pytest.raises(SpecError, match="size must be an integer, got True"):
        Inner(size=True)
    assert replace(rec, rate=1).rate == 1.0 and isinstance(replace(rec, rate=1).rate, float)
    assert replace(rec, sizes=[3]).sizes == (3,)
    with pytest.raises(SpecError, match=r"sizes\[1\] must be <= 100, got 10000"):
        replace(rec, sizes=(1, 10 ** 4))


def test_check_plain_walks_free_form_values():
    assert check_plain({"a": [1, {"b": 2.5}]}, "args") == {"a": [1, {"b": 2.5}]}
    with pytest.raises(SpecError, match=r"args\.a\[1\]\.b must be a finite number"):
        check_plain({"a": [1, {"b": math.inf}]}, "args")
    with pytest.raises(SpecError, match=r"args\.n must be at most"):
        check_plain({"n": 10 ** 30}, "args")


@pytest.mark.parametrize("bounds, value, rule", [
    (Range(ge=1), 0, "must be >= 1"), (Range(gt=0), 0, "must be > 0"), (Range(le=2), 3, "must be <= 2"),
    (Range(lt=0.5), 0.5, "must be < 0.5"), (Range(ge=0, le=2 ** 32 - 1), 2 ** 32, "must be <= 4294967295"),
])
def test_range_rules(bounds, value, rule):
    with pytest.raises(SpecError) as err:
        bounds.check(value, "x")
    assert str(err.value) == f"x {rule}, got {value}"
    bounds.check(1 if bounds.ge == 1 else 0.25, "x")  # an allowed value passes
