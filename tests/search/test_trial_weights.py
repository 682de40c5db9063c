"""The worker side of kept weights: a complete trial's final report carries a safetensors checkpoint, and a node
that cannot reach the run's storage still reports the trial, without weights and saying why."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from archlab.nn.weights import load_checkpoint, metadata_of
from archlab.search.trial import WEIGHTS_FILE, _report_complete

SPEC = SimpleNamespace(arch_id="abc123")
STATE = {"conv.weight": torch.arange(6.0).view(2, 3)}


def test_the_final_report_carries_the_weights_as_a_checkpoint(tmp_path):
    seen = []

    def report(checkpoint=None, **fields):
        # Ray copies the folder while report runs; the test does the same before the temporary folder goes
        with checkpoint.as_directory() as folder:
            copy = tmp_path / WEIGHTS_FILE
            copy.write_bytes((Path(folder) / WEIGHTS_FILE).read_bytes())
        seen.append(fields)

    _report_complete(report, {"top1": 50.0}, STATE, SPEC, 7)
    assert seen == [{"state": "complete", "final": True, "top1": 50.0}]
    assert torch.equal(load_checkpoint(tmp_path / WEIGHTS_FILE)["conv.weight"], STATE["conv.weight"])
    meta = metadata_of(tmp_path / WEIGHTS_FILE)
    assert (meta["number"], meta["arch_id"]) == ("7", "abc123")


def test_storage_a_node_cannot_reach_costs_the_weights_not_the_trial():
    calls = []

    def report(checkpoint=None, **fields):
        calls.append((checkpoint is not None, fields))
        if checkpoint is not None:   # what Ray raises on a worker node without the shared storage path
            raise RuntimeError("Unable to set up cluster storage with the following settings:\n...")

    _report_complete(report, {"top1": 50.0}, STATE, SPEC, 7)
    assert [c[0] for c in calls] == [True, False]
    last = calls[-1][1]
    assert last["state"] == "complete" and last["top1"] == 50.0
    assert last["weights_error"].startswith("weights not kept: Unable to set up cluster storage")


def test_no_state_no_checkpoint():
    calls = []
    _report_complete(lambda checkpoint=None, **f: calls.append((checkpoint, f)), {"top1": 1.0}, None, SPEC, 0)
    assert calls == [(None, {"state": "complete", "final": True, "top1": 1.0})]
