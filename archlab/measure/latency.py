"""Measured latency: warm-up, then repeats until the median is stable, on CPU (eager, torch.compile, ONNX Runtime)
or CUDA (events + synchronisation), guarded against training running beside it, cached by software stack.

NAS papers often stand in FLOPs or a latency predictor for latency (MnasNet, Tan et al. 2019, measured on
phones instead; FBNet, Wu et al. 2019, used a lookup table). archlab measures: the stopping rule is a
distribution-free 95% confidence interval of the median (order statistics, Hollander and Wolfe), narrower
than `rel_precision` of it, or a time cap; on one thread, samples during which the thread lost the CPU to
other load are dropped. While a measurement runs it holds an exclusive inter-process
lock; trainers (`archlab.measure.train`) pass a `MeasurementGate` between steps and pause while the lock is held, so
parallel Ray trials do not corrupt each other's numbers (docs/measurement.md gives the protocol and the bench
figure).
"""
from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, memory_shortfall
from archlab.core.files import atomic_write_text
from archlab.core.registry import Registry

__all__ = ["BACKENDS", "BackendUnavailable", "JsonStore", "LatencyCache", "LatencyProtocol", "LatencyResult",
           "MeasurementGate", "default_lock_dir", "device_name", "measure_latency", "measurement_lock",
           "nominal_reference_ms", "software_stack"]


class BackendUnavailable(ArchlabError):
    """A latency backend that cannot run here (package missing, no compiler, no GPU)."""


# --- the measurement lock ------------------------------------------------------------------------------

def default_lock_dir() -> Path:
    """$ARCHLAB_LOCK_DIR, else a per-user folder under the system temp dir: every archlab process shares it."""
    env = os.environ.get("ARCHLAB_LOCK_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"archlab-locks-{os.getuid()}"


def _open_lock(folder: Path, name: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o666)


_HELD: dict[str, tuple[threading.RLock, list]] = {}
_HELD_GUARD = threading.Lock()


@contextmanager
def measurement_lock(lock_dir: str | Path | None = None) -> Iterator[float]:
    """Hold the exclusive measurement lock (re-entrant in a process); yields the seconds spent waiting for it.

    Protocol (flock, released by the kernel if a process dies): the measurer takes `gate` exclusively, so
    trainers block at their next step, then `work` exclusively, which waits for steps already running.
    Trainers hold `gate` only for an instant, so a measurer is never starved by a stream of steps.
    """
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    key = str(folder.resolve())
    with _HELD_GUARD:
        rlock, state = _HELD.setdefault(key, (threading.RLock(), [0, None, None]))
    start = time.perf_counter()
    with rlock:
        if state[0] == 0:
            gate, work = _open_lock(folder, "gate.lock"), _open_lock(folder, "work.lock")
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(work, fcntl.LOCK_EX)
            state[1], state[2] = (gate, work), threading.get_ident()
        state[0] += 1
        try:
            yield time.perf_counter() - start
        finally:
            state[0] -= 1
            if state[0] == 0:
                for fd in reversed(state[1]):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                state[1] = state[2] = None


def _held_here(key: str) -> bool:
    """Does this thread hold the measurement lock of `key` (then its own training steps must not wait for it)?"""
    entry = _HELD.get(key)
    return entry is not None and entry[1][0] > 0 and entry[1][2] == threading.get_ident()


class MeasurementGate:
    """A trainer's side of the measurement lock: `with gate.step():` around each step pauses during measurements."""

    def __init__(self, lock_dir: str | Path | None = None) -> None:
        folder = Path(lock_dir) if lock_dir else default_lock_dir()
        self._gate = _open_lock(folder, "gate.lock")
        self._work = _open_lock(folder, "work.lock")
        self._key = str(folder.resolve())
        self.paused_s = 0.0          # total time this trainer waited for measurements

    @contextmanager
    def step(self) -> Iterator[None]:
        """Wait while a measurement holds the lock, then hold a shared claim for the duration of one step."""
        if _held_here(self._key):  # training inside this thread's own measurement: waiting would deadlock
            yield
            return
        start = time.perf_counter()
        fcntl.flock(self._gate, fcntl.LOCK_SH)
        fcntl.flock(self._gate, fcntl.LOCK_UN)
        fcntl.flock(self._work, fcntl.LOCK_SH)
        self.paused_s += time.perf_counter() - start
        try:
            yield
        finally:
            fcntl.flock(self._work, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock files."""
        for fd in (self._gate, self._work):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> MeasurementGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a small JSON store shared by processes ---------------------------------------------------------------

class JsonStore:
    """A JSON object on disk, read without locks and updated under flock with an atomic replace."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any]:
        """The whole object ({} when the file does not exist)."""
        if not self.path.exists():
            return {}
        from archlab.core.yamlio import read_text_file
        text = read_text_file(self.path)   # a regular UTF-8 file under the size cap (not /dev/zero)
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as err:
            raise ArchlabError(f"{self.path}: is not valid JSON ({err.msg} at line {err.lineno}); delete it to "
                               "start a fresh cache") from None
        except (RecursionError, ValueError):
            raise ArchlabError(f"{self.path}: is not valid JSON (nested too deep, or a number too long); delete "
                               "it to start a fresh cache") from None
        if not isinstance(data, dict):
            raise ArchlabError(f"{self.path}: must hold a JSON object, got {type(data).__name__}")
        return data

    def get(self, key: str) -> Any:
        """The value under `key`, or None."""
        return self.read().get(key)

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key` (read-modify-write under an exclusive lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read()
            data[key] = value
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
        finally:
            os.close(fd)


# --- identity of the machine and stack ---------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """The processor behind `device`: the CPU model or the GPU name."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r}: CUDA is not available here")
        return torch.cuda.get_device_name(torch.device(device))
    return _cpu_model()


def software_stack(backend: str = "eager") -> str:
    """Versions that change latency: torch, and the backend's runtime where it has one."""
    parts = [f"torch {torch.__version__}"]
    if backend == "onnxruntime":
        try:
            import onnxruntime
            parts.append(f"onnxruntime {onnxruntime.__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


# --- results and cache ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LatencyResult:
    """One latency measurement: per-inference median, p90 and CV over `repeats` samples, and what it ran on."""

    median_ms: float
    p90_ms: float
    cv: float                        # std / mean of the samples
    repeats: int                     # samples the statistics use (after warm-up, preempted ones dropped)
    batch: int
    img_size: int
    device: str
    threads: int
    backend: str
    mean_ms: float = 0.0
    min_ms: float = 0.0
    inner: int = 1                   # inferences per timed sample (tiny models are timed in groups)
    dropped: int = 0                 # single-thread samples during which the thread lost the CPU
    warmup_runs: int = 0
    converged: bool = True           # False: stopped by the time cap before the median was stable
    rel_ci: float = 0.0              # half-width of the median's 95% CI over the median
    wall_s: float = 0.0
    lock_wait_s: float = 0.0         # time spent waiting for the measurement lock
    in_chans: int = 3
    memory_format: str = "contiguous"
    arch_id: str | None = None
    name: str = ""
    device_name: str = ""
    stack: str = ""
    cached: bool = False
    ref_ms: float | None = None      # median time of the reference kernel, timed beside every sample
    nominal_ms: float | None = None  # median(sample / reference) x the machine's nominal reference time

    @property
    def latency_ms(self) -> float:
        """The figure archlab ranks by: `nominal_ms` where the reference kernel was timed, else `median_ms`."""
        return self.nominal_ms if self.nominal_ms is not None else self.median_ms

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (from_dict turns it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        """Rebuild from `to_dict` output (unknown keys are ignored, so old caches still load)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class LatencyCache:
    """Latency results on disk, keyed by arch_id, device, software stack, threads, batch, input and backend."""

    def __init__(self, path: str | Path) -> None:
        self.store = JsonStore(path)

    @staticmethod  # one keyword per part of the key, so no caller can swap two of them
    def key(*, arch_id: str, device: str, device_name: str, stack: str, threads: int, batch: int, img_size: int,
            in_chans: int, backend: str, memory_format: str, reference: bool = False) -> str:
        """The cache key: every field that changes a latency, and whether it carries the drift correction."""
        return "|".join(str(v) for v in (arch_id, device, device_name, stack, f"threads={threads}",
                                          f"batch={batch}", f"{in_chans}x{img_size}x{img_size}", backend,
                                          memory_format, *(["reference"] if reference else [])))

    def get(self, key: str) -> LatencyResult | None:
        """The cached result for `key`, marked cached, or None."""
        data = self.store.get(key)
        return None if data is None else LatencyResult.from_dict({**data, "cached": True})

    def put(self, key: str, result: LatencyResult) -> None:
        """Store a fresh result."""
        self.store.put(key, {**result.to_dict(), "cached": False})

    def __len__(self) -> int:
        return len(self.store.read())


# --- backends -------------------------------------------------------------------------------------------

Runner = Callable[[], Any]
BACKENDS: Registry[Callable[[nn.Module, torch.Tensor, str, int], Runner]] = Registry("latency backend")


@BACKENDS.register("eager")
def _eager(model: nn.Module, x: torch.Tensor, device: str, threads: int) -> Runner:
    def run() -> Any:
        with torch.inference_mode():
            return model(x)
    return run


@BACKENDS.register("compile")
def _compile(model: nn.Module, x: torch.Tensor, device: str, threads: int) -> Runner:
    try:
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(x)  # compiles here, outside the timed region
    except Exception as err:
        raise BackendUnavailable(f"backend 'compile' failed here: {type(err).__name__}: {str(err)[:300]}") from None
    return _eager(compiled, x, device, threads)


@BACKENDS.register("onnxruntime")
def _onnxruntime(model: nn.Module, x: torch.Tensor, device: str, threads: int) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("backend 'onnxruntime' needs the onnxruntime package") from None
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the TorchScript exporter needs no onnxscript; the dynamo exporter is used when that is installed
            try:
                import onnxscript  # noqa: F401
                dynamo = True
            except ImportError:
                dynamo = False
            # the dynamo exporter prints progress on stdout, which `archlab latency --json` keeps for its JSON
            with redirect_stdout(sys.stderr):
                torch.onnx.export(model, (x,), buf, input_names=["x"], output_names=["y"], dynamo=dynamo,
                                  verbose=False)
    except Exception as err:
        raise BackendUnavailable(f"backend 'onnxruntime': ONNX export failed: {type(err).__name__}: "
                                 f"{str(err)[:300]}") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable("backend 'onnxruntime' on CUDA needs onnxruntime-gpu")
        providers = ["CUDAExecutionProvider"]
    session = ort.InferenceSession(buf.getvalue(), opts, providers=providers)
    feed = {"x": x.detach().cpu().numpy()}
    return lambda: session.run(None, feed)


# --- the reference kernel: host-drift correction ----------------------------------------------------------
# A shared or virtual machine changes speed by 5-10% over seconds (other tenants, frequency): a fixed 192x192
# matmul timed in 4 s windows on this 2-core VM varied 9.8-11.6 ms, and a 3x3 conv moved with it. So on CPU a
# small fixed kernel is timed right after every sample; the median of sample / reference cancels the drift
# (ResNet-18 at 224 px: CV of 8 medians 5.7% raw, 0.8% as ratios), and x the machine's nominal reference time
# (calibrated once per machine, threads and torch, stored beside the lock) it reads in milliseconds again.

_REFERENCES: dict[int, Runner] = {}
_NOMINAL: dict[str, float] = {}


def _reference_kernel(threads: int) -> Runner:
    """A fixed ~1 ms CPU workload (four 3x3 convs and a matmul), the same in every process."""
    if threads not in _REFERENCES:
        gen = torch.Generator().manual_seed(0)
        weight, x = torch.randn(32, 32, 3, 3, generator=gen), torch.randn(1, 32, 32, 32, generator=gen)
        a, b = torch.randn(192, 192, generator=gen), torch.randn(192, 192, generator=gen)

        def run() -> None:
            with torch.inference_mode():
                for _ in range(4):
                    torch.nn.functional.conv2d(x, weight, padding=1)
                a @ b
        _REFERENCES[threads] = run
    return _REFERENCES[threads]


def nominal_reference_ms(threads: int, lock_dir: str | Path | None = None, *, lock: bool = True) -> float:
    """The machine's nominal reference-kernel time: its 10th percentile over 1 s, measured once and stored.

    `lock` False calibrates without the measurement lock, as `measure_latency(lock=False)` measures.
    """
    key = f"{_cpu_model()} | {software_stack()} | threads={threads}"
    store = JsonStore((Path(lock_dir) if lock_dir else default_lock_dir()) / "reference_kernel.json")
    memo = f"{store.path}: {key}"
    if memo in _NOMINAL:
        return _NOMINAL[memo]
    value = store.get(key)
    if value is None:
        run, old = _reference_kernel(threads), torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with measurement_lock(lock_dir) if lock else _no_lock():
                for _ in range(20):
                    run()
                times, end = [], time.perf_counter() + 1.0
                while time.perf_counter() < end or len(times) < 50:
                    t = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - t) * 1e3)
        finally:
            torch.set_num_threads(old)
        value = _percentile(times, 0.1)
        store.put(key, value)
    _NOMINAL[memo] = float(value)
    return _NOMINAL[memo]


# --- measurement ----------------------------------------------------------------------------------------

def _median_rel_ci(samples: list[float]) -> float:
    """Half-width of the distribution-free 95% CI of the median (order statistics), relative to the median."""
    n = len(samples)
    s = sorted(samples)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half) - 1), min(n - 1, math.ceil(n / 2 + half))
    med = statistics.median(s)
    return (s[hi] - s[lo]) / (2 * med) if med > 0 else 0.0


def _percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _resolve(model_or_spec: ArchSpec | nn.Module, img_size: int | None, in_chans: int | None
             ) -> tuple[nn.Module, int, int, str | None, str]:
    from archlab.nn.build import build_model
    if isinstance(model_or_spec, ArchSpec):
        spec = model_or_spec.replace(img_size=img_size) if img_size else model_or_spec
        return build_model(spec), spec.img_size, spec.in_chans, spec.arch_id, spec.name
    if not isinstance(model_or_spec, nn.Module):
        raise ArchlabError(f"measure_latency needs an ArchSpec or an nn.Module, got {type(model_or_spec).__name__}")
    spec = getattr(model_or_spec, "spec", None)
    if isinstance(spec, ArchSpec):
        if img_size not in (None, spec.img_size):
            spec = spec.replace(img_size=img_size)  # the same weights run at another input size
        return model_or_spec, spec.img_size, spec.in_chans, spec.arch_id, spec.name
    if img_size is None:
        raise ArchlabError("measure_latency: img_size is required for a module that carries no ArchSpec")
    return model_or_spec, img_size, in_chans or getattr(model_or_spec, "in_chans", 3), None, ""


@dataclass(frozen=True, slots=True)
class LatencyProtocol:
    """How one latency figure is measured: input shape, device, threads, backend and the stopping rule."""
    batch: int = 1
    img_size: int | None = None            # None: the spec's own
    in_chans: int | None = None            # None: the spec's own (or the module's `in_chans`, else 3)
    device: str = "cpu"
    threads: int | None = None             # None: torch's current setting
    backend: str = "eager"
    memory_format: str = "contiguous"
    max_seconds: float = 10.0              # sampling stops here even if the median has not converged
    min_repeats: int = 10
    rel_precision: float = 0.01            # stop when the median's 95% CI is within this share of it
    lock: bool = True                      # hold the cross-process measurement lock while timing
    lock_dir: str | Path | None = None
    seed: int = 0                          # of the random input
    reference: bool | None = None          # drift correction by a reference kernel (default: on for CPU)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            BACKENDS.lookup(self.backend)  # an ArchlabError with a did-you-mean
        if self.memory_format not in ("contiguous", "channels_last"):
            raise ArchlabError(f"memory_format must be contiguous or channels_last, got {self.memory_format!r}")
        if not (self.batch >= 1 and math.isfinite(self.max_seconds) and self.max_seconds > 0
                and self.min_repeats >= 3):
            raise ArchlabError(f"need batch >= 1, a finite max_seconds > 0 and min_repeats >= 3, got batch="
                               f"{self.batch}, max_seconds={self.max_seconds}, min_repeats={self.min_repeats}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ArchlabError(f"device must be cpu or cuda[:N], got {self.device!r}")


def measure_latency(model_or_spec: ArchSpec | nn.Module, protocol: LatencyProtocol | None = None, *,
                    cache: LatencyCache | None = None, **fields: Any) -> LatencyResult:
    """Measure the per-inference latency of a network under `protocol` (its fields may also be given as keywords).

    Warm-up runs (at least 3, and 10% of `max_seconds` up to 0.5 s) are followed by timed samples until the
    median's 95% CI is within `rel_precision` of it (after `min_repeats`) or `max_seconds` pass. A model
    faster than 1 ms is timed in groups (`inner` runs per sample). Holds `measurement_lock` while timing.
    `reference` (default: on for CPU) times a fixed kernel after every sample and reports `nominal_ms`, the
    latency corrected for the machine's drift in speed (see `nominal_reference_ms`).
    """
    p = dataclasses.replace(protocol or LatencyProtocol(), **fields)
    cuda = p.device.startswith("cuda")
    try:
        model, size, chans, arch_id, name = _resolve(model_or_spec, p.img_size, p.in_chans)
    except (RuntimeError, MemoryError) as err:   # a spec too large to build (a huge --img-size widens its head)
        _refuse_out_of_memory(err, model_or_spec, p)
    old_threads = torch.get_num_threads()
    threads = p.threads or old_threads
    dev_name, stack = device_name(p.device), software_stack(p.backend)
    use_ref = not cuda and p.reference is not False  # CUDA events are not subject to the CPU's drift
    key = None
    if cache is not None and arch_id is not None:
        key = LatencyCache.key(arch_id=arch_id, device=p.device, device_name=dev_name, stack=stack, threads=threads,
                               batch=p.batch, img_size=size, in_chans=chans, backend=p.backend,
                               memory_format=p.memory_format, reference=use_ref)
        hit = cache.get(key)
        if hit is not None:
            return hit
    fmt = torch.channels_last if p.memory_format == "channels_last" else torch.contiguous_format
    torch.set_num_threads(threads)
    try:
        model = model.eval().to(device=p.device, memory_format=fmt)
        x = torch.randn(p.batch, chans, size, size, generator=torch.Generator().manual_seed(p.seed))
        x = x.to(p.device).contiguous(memory_format=fmt)
        run = BACKENDS.get(p.backend)(model, x, p.device, threads)
        run()  # first call (allocations, lazy init) outside the lock: it is not a measurement
        if cuda:
            torch.cuda.synchronize(p.device)
        nominal = nominal_reference_ms(threads, p.lock_dir, lock=p.lock) if use_ref else None
        result = _time(run, p, single_thread=threads == 1, reference=_reference_kernel(threads) if use_ref else None)
        ratio = result.pop("ratio")
        if nominal is not None and ratio is not None:
            result["nominal_ms"] = ratio * nominal
    except (RuntimeError, MemoryError) as err:   # the input or the activations do not fit
        _refuse_out_of_memory(err, model_or_spec, p, size=size, chans=chans)
    finally:
        torch.set_num_threads(old_threads)
    result = LatencyResult(batch=p.batch, img_size=size, device=p.device, threads=threads, backend=p.backend,
                           in_chans=chans, memory_format=p.memory_format, arch_id=arch_id, name=name,
                           device_name=dev_name, stack=stack, **result)
    if cache is not None and key is not None:
        cache.put(key, result)
    return result


def _refuse_out_of_memory(err: BaseException, model_or_spec: ArchSpec | nn.Module, p: LatencyProtocol, *,
                          size: int | None = None, chans: int | None = None) -> NoReturn:
    """Re-raise `err`, or, where it is an allocation failure, an ArchlabError naming the network and its input."""
    why = memory_shortfall(err)
    if why is None:
        raise err
    spec = model_or_spec if isinstance(model_or_spec, ArchSpec) else None
    label = (spec.name or spec.arch_id) if spec is not None else type(model_or_spec).__name__
    size = size or (spec.img_size if spec is not None else p.img_size)
    chans = chans or (spec.in_chans if spec is not None else p.in_chans)
    raise ArchlabError(f"{label} at batch {p.batch} on {chans}x{size}x{size} inputs does not fit in memory on "
                       f"{p.device} (out of memory: {why}); use a smaller img_size or batch") from None


PREEMPTED = 0.05  # a single-thread sample whose wall time exceeds its thread CPU time by 5% lost the CPU


class _Clock:
    """Times `k` back-to-back runs: CUDA events on a GPU, wall and thread CPU time on a CPU."""

    def __init__(self, cuda: bool, single_thread: bool) -> None:
        self.cuda, self.single_thread = cuda, single_thread

    def __call__(self, fn: Runner, k: int = 1) -> tuple[float, bool]:
        """Milliseconds per run over `k` runs, and whether the sample is clean (kept the CPU throughout)."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(k):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / k, True
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(k):
            fn()
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        return wall * 1e3 / k, not self.single_thread or wall - cpu <= PREEMPTED * wall


def _warm_up(run: Runner, clock: _Clock, p: LatencyProtocol, t_start: float) -> tuple[int, int]:
    """Warm-up runs; returns their count and `inner`, the runs per sample that make a sample last >= 1 ms."""
    warm_s = min(0.5, 0.1 * p.max_seconds)
    warm, warm_ms = 0, []
    while warm < 3 or time.perf_counter() - t_start < warm_s:
        warm_ms.append(clock(run)[0])
        warm += 1
        if time.perf_counter() - t_start > p.max_seconds / 2:
            break
    return warm, max(1, math.ceil(1.0 / max(min(warm_ms[-3:]), 1e-6)))


@dataclass
class _Samples:
    """Every sample, the clean ones, and reference-kernel times and ratios beside the clean ones."""
    all: list[float] = field(default_factory=list)
    clean: list[float] = field(default_factory=list)
    refs: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    converged: bool = False
    rel: float = float("inf")


def _sample(run: Runner, clock: _Clock, p: LatencyProtocol, inner: int, reference: Runner | None,
            t_start: float) -> _Samples:
    """Timed samples until the median's CI is tight enough after `min_repeats`, or the time is up."""
    s = _Samples()
    if reference is not None:
        for _ in range(3):
            reference()
    while True:
        ms, ok = clock(run, inner)
        s.all.append(ms)
        if reference is not None:
            ref_ms, ref_ok = clock(reference)
            if ok and ref_ok:
                s.refs.append(ref_ms)
                s.ratios.append(ms / ref_ms)
        if ok:
            s.clean.append(ms)
        n = len(s.clean)
        if ok and n >= p.min_repeats and (n < 50 or n % max(1, n // 20) == 0):
            s.rel = _median_rel_ci(s.clean)
            if s.rel <= p.rel_precision:
                s.converged = True
                return s
        if (time.perf_counter() - t_start > p.max_seconds and len(s.all) >= 3) or len(s.all) >= 100_000:
            return s


def _time(run: Runner, p: LatencyProtocol, *, single_thread: bool, reference: Runner | None = None
          ) -> dict[str, Any]:
    """Warm up and sample `run`; the statistics as LatencyResult fields.

    With one CPU thread the work runs on the calling thread, so wall time minus that thread's CPU time is the
    time it was descheduled: such samples measure the machine's other load, not the model, and are dropped
    (all are kept if fewer than 3 stay clean, e.g. a machine loaded beyond its cores throughout). With a
    `reference` runner, it is timed once after every sample and the median of the ratios comes back as `ratio`.
    """
    clock = _Clock(p.device.startswith("cuda"), single_thread)
    guard = measurement_lock(p.lock_dir) if p.lock else _no_lock()
    with guard as waited:
        t_start = time.perf_counter()
        warm, inner = _warm_up(run, clock, p, t_start)
        s = _sample(run, clock, p, inner, reference, t_start)
        wall = time.perf_counter() - t_start
    used = s.clean if len(s.clean) >= 3 else s.all
    rel, converged = s.rel, s.converged
    if not converged:
        rel = _median_rel_ci(used)
        converged = len(used) >= p.min_repeats and rel <= p.rel_precision
    mean = statistics.fmean(used)
    std = statistics.stdev(used) if len(used) > 1 else 0.0
    return dict(median_ms=statistics.median(used), p90_ms=_percentile(used, 0.9), cv=std / mean if mean else 0.0,
                repeats=len(used), dropped=len(s.all) - len(used), mean_ms=mean, min_ms=min(used), inner=inner,
                warmup_runs=warm, converged=converged, rel_ci=rel, wall_s=wall, lock_wait_s=waited,
                ref_ms=statistics.median(s.refs) if s.refs else None,
                ratio=statistics.median(s.ratios) if s.ratios else None)


@contextmanager
def _no_lock() -> Iterator[float]:
    yield 0.0
