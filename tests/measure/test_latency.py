"""archlab.measure.latency: statistics, backends, the cache, the measurement lock, and `archlab latency`."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
import torch

from archlab.arch.spec import ArchSpec, StageSpec, StemSpec
from archlab.cli.main import main
from archlab.core.errors import ArchlabError
from archlab.measure.latency import (
    LatencyCache,
    LatencyResult,
    MeasurementGate,
    _median_rel_ci,
    measure_latency,
    measurement_lock,
)


@pytest.fixture(autouse=True)
def _locks(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_LOCK_DIR", str(tmp_path / "locks"))


def tiny_spec(width: int = 8) -> ArchSpec:
    return ArchSpec(stem=StemSpec(width=width, stride=1),
                    stages=(StageSpec(block="basic", depth=1, width=width, stride=2),),
                    img_size=16, in_chans=1, num_classes=10, name="tiny")


def test_statistics_on_a_tiny_model():
    r = measure_latency(tiny_spec(), threads=1, max_seconds=2.0, min_repeats=10)
    assert r.repeats >= 10 and r.median_ms > 0 and r.min_ms <= r.median_ms <= r.p90_ms
    assert r.cv >= 0 and r.warmup_runs >= 3 and r.inner >= 1
    assert (r.batch, r.img_size, r.in_chans, r.device, r.threads, r.backend) == (1, 16, 1, "cpu", 1, "eager")
    assert r.arch_id == tiny_spec().arch_id and "torch" in r.stack and r.device_name
    assert r.converged == (r.rel_ci <= 0.01)
    back = LatencyResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r


def test_bigger_work_takes_longer():
    small = measure_latency(tiny_spec(16), threads=1, batch=1, max_seconds=1.5)
    big = measure_latency(tiny_spec(16), threads=1, batch=256, max_seconds=1.5)
    assert big.median_ms > 4 * small.median_ms  # 256x the images; generous for overheads and a shared machine


def test_median_ci_rule():
    assert _median_rel_ci([1.0] * 20) == 0.0
    spread = [1.0 + 0.1 * (i % 10) for i in range(100)]
    assert 0.0 < _median_rel_ci(spread) < _median_rel_ci(spread[:10])


def test_module_input_and_errors():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    r = measure_latency(model, img_size=8, max_seconds=0.5, min_repeats=3, threads=1)
    assert r.arch_id is None and r.in_chans == 3
    with pytest.raises(ArchlabError, match="img_size is required"):
        measure_latency(model)
    with pytest.raises(ArchlabError, match="did you mean 'onnxruntime'"):
        measure_latency(tiny_spec(), backend="onnxrt")
    with pytest.raises(ArchlabError, match="device must be"):
        measure_latency(tiny_spec(), device="tpu")


class _Hungry(torch.nn.Module):
    """Raises what torch's CPU allocator raises when an input is far too large."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)")


def test_out_of_memory_is_one_message_naming_the_network_and_input(monkeypatch, capsys):
    with pytest.raises(ArchlabError, match=r"^_Hungry at batch 4 on 1x8x8 inputs does not fit in memory on cpu \(out "
                                           r"of memory: 1.0 GiB could not be allocated\); use a smaller img_size or "
                                           r"batch$"):
        measure_latency(_Hungry(), img_size=8, in_chans=1, batch=4, threads=1)
    with pytest.raises(RuntimeError, match="not memory"):   # any other error is left as it is
        measure_latency(torch.nn.Sequential(torch.nn.Flatten(), _Raise()), img_size=8, threads=1)
    # a spec too large to build (lenet5 at 8192 px: a 32 GB first linear layer) through the CLI: exit 2, one line
    import archlab.measure.latency as latency

    def no_memory(*args: object) -> None:
        _Hungry().forward(torch.zeros(1))
    monkeypatch.setattr(latency, "_resolve", no_memory)
    assert main(["latency", "lenet5", "--img-size", "8192"]) == 2
    assert capsys.readouterr().err == ("archlab: error: lenet5 at batch 1 on 1x8192x8192 inputs does not fit in memory "
                                       "on cpu (out of memory: 1.0 GiB could not be allocated); use a smaller img_size "
                                       "or batch\n")


class _Raise(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("not memory: a shape mismatch")


def test_cache_hits_and_keys(tmp_path):
    cache = LatencyCache(tmp_path / "lat.json")
    first = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache)
    again = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache)
    assert not first.cached and again.cached and again.median_ms == first.median_ms and len(cache) == 1
    other = measure_latency(tiny_spec(), threads=1, batch=2, max_seconds=0.5, cache=cache)
    assert not other.cached and len(cache) == 2
    key = json.loads((tmp_path / "lat.json").read_text())
    assert any("threads=1" in k and "batch=2" in k and "torch " in k for k in key)
    (tmp_path / "lat.json").write_text("{oops")
    with pytest.raises(ArchlabError, match="lat.json: is not valid JSON"):
        measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache)


def test_onnxruntime_backend():
    r = measure_latency(tiny_spec(), backend="onnxruntime", threads=1, max_seconds=1.0)
    assert r.backend == "onnxruntime" and r.median_ms > 0 and "onnxruntime" in r.stack


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ARCHLAB_SLOW"), reason="torch.compile takes ~40 s on 2 cores; "
                    "set ARCHLAB_SLOW=1 to run")
def test_compile_backend():
    r = measure_latency(tiny_spec(), backend="compile", threads=1, max_seconds=1.0)
    assert r.backend == "compile" and r.median_ms > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_events():
    r = measure_latency(tiny_spec(), device="cuda", max_seconds=1.0)
    assert r.device == "cuda" and r.median_ms > 0


def test_trainer_gate_waits_for_a_measurement(tmp_path):
    held = threading.Event()

    def measurer() -> None:
        with measurement_lock(tmp_path / "locks"):
            held.set()
            time.sleep(0.4)

    thread = threading.Thread(target=measurer)
    thread.start()
    held.wait(5)
    gate = MeasurementGate(tmp_path / "locks")
    start = time.perf_counter()
    with gate.step():
        waited = time.perf_counter() - start
    thread.join()
    gate.close()
    assert waited > 0.25 and gate.paused_s == pytest.approx(waited, abs=0.05)


def test_measurement_waits_for_a_running_step_and_is_reentrant(tmp_path):
    gate = MeasurementGate(tmp_path / "locks")
    waits: list[float] = []

    def measurer() -> None:
        with measurement_lock(tmp_path / "locks") as waited:
            with measurement_lock(tmp_path / "locks"):  # nested: no self-deadlock
                waits.append(waited)

    with gate.step():
        thread = threading.Thread(target=measurer)
        thread.start()
        time.sleep(0.3)  # a training step in progress: the measurement must not start yet
        assert not waits
    thread.join(5)
    gate.close()
    assert waits and waits[0] > 0.2


def test_cli_latency_json(capsys, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec().to_yaml())
    assert main(["latency", str(path), "--threads", "1", "--max-seconds", "0.5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "tiny" and rows[0]["median_ms"] > 0
    assert main(["latency", str(path), "--threads", "1", "--max-seconds", "0.5", "--batch", "2"]) == 0
    assert "ms median" in capsys.readouterr().out
    assert main(["latency", "resnet19"]) == 2


def test_training_inside_a_held_lock_does_not_deadlock(tmp_path):
    gate = MeasurementGate(tmp_path / "locks")
    with measurement_lock(tmp_path / "locks"):
        with gate.step():  # the same thread holds the lock: the step must not wait for itself
            pass
    gate.close()


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:  # busy, not asleep: a sleeping sample would count as preempted
        pass


def test_reference_ratio_cancels_a_change_of_machine_speed():
    from archlab.measure.latency import LatencyProtocol, _time
    speed = {"factor": 1.0}

    def model() -> None:
        _busy(3.0 * speed["factor"])

    def reference() -> None:
        _busy(1.5 * speed["factor"])

    runs = []
    for factor in (1.0, 1.6):  # the machine slows down by 60% between two measurements of the same model
        speed["factor"] = factor
        protocol = LatencyProtocol(device="cpu", max_seconds=0.6, min_repeats=10, rel_precision=0.01, lock=False)
        runs.append(_time(model, protocol, single_thread=True, reference=reference))
    assert runs[1]["median_ms"] > 1.4 * runs[0]["median_ms"]
    assert runs[0]["ratio"] == pytest.approx(2.0, rel=0.1) and runs[1]["ratio"] == pytest.approx(2.0, rel=0.1)
    assert runs[0]["ref_ms"] == pytest.approx(1.5, rel=0.2)


def test_drift_corrected_latency_on_cpu_and_the_stored_nominal(tmp_path):
    from archlab.measure.latency import nominal_reference_ms
    r = measure_latency(tiny_spec(), threads=1, max_seconds=1.0)
    assert r.nominal_ms is not None and r.ref_ms is not None and r.latency_ms == r.nominal_ms
    # the correction rescales by the machine's drift, not by orders of magnitude
    assert 0.3 * r.median_ms < r.nominal_ms < 3 * r.median_ms
    stored = json.loads((tmp_path / "locks" / "reference_kernel.json").read_text())
    assert list(stored.values()) == [nominal_reference_ms(1)]
    off = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, reference=False)
    assert off.nominal_ms is None and off.ref_ms is None and off.latency_ms == off.median_ms


def test_an_unlocked_measurement_calibrates_without_the_lock(tmp_path):
    # lock=False must not wait for the measurement lock, the reference kernel's first calibration included
    done = threading.Event()
    with measurement_lock(tmp_path / "held"):
        worker = threading.Thread(target=lambda: (measure_latency(tiny_spec(), threads=1, max_seconds=0.3, lock=False,
                                                                  lock_dir=tmp_path / "held"), done.set()))
        worker.start()
        worker.join(timeout=60)
        assert done.is_set()
    assert (tmp_path / "held" / "reference_kernel.json").exists()


def test_cache_keeps_raw_and_drift_corrected_results_apart(tmp_path):
    cache = LatencyCache(tmp_path / "lat.json")
    raw = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache, reference=False)
    corrected = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache)
    assert not corrected.cached and raw.nominal_ms is None and corrected.nominal_ms is not None
    again = measure_latency(tiny_spec(), threads=1, max_seconds=0.5, cache=cache)
    assert again.cached and again.nominal_ms == corrected.nominal_ms
