"""The did-you-mean hint every "unknown name" message shares."""
from __future__ import annotations

from archlab.core.errors import did_you_mean


def test_a_close_name_is_suggested_else_the_valid_ones_are_listed():
    assert did_you_mean("nowt", ["nwot", "snip"]) == " (did you mean 'nwot'?)"
    assert did_you_mean("zzz", ["snip", "nwot"]) == " (valid: nwot, snip)"
    assert did_you_mean("zzz", ["snip"], list_valid=False) == ""


def test_no_choices_says_so_instead_of_an_empty_list():
    assert did_you_mean("y", []) == " (there is none to choose from)"
    assert did_you_mean("y", [], list_valid=False) == ""
