"""One search trial, as a Ray Tune worker runs it: decode the architecture, measure its latency, maybe skip
it, train it with a report per epoch, and report the final result (or why it failed).

Every outcome is a result with `final: True` and a `state`; the driver (archlab.search.searcher) tells it to
Optuna. The last epoch's evaluation goes out with the final result, so no scheduler can cut off a trial that
has already finished. A complete trial's final result carries its trained weights (safetensors) as a Ray Tune
checkpoint, which Ray persists to the run's storage path whichever node trained it (docs/cluster.md); a trial
stopped at a rung never reaches that report, so it has no final weights.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CONST", "FAULTS_ENV", "WEIGHTS_FILE", "TrialSettings", "run_trial", "skip_reason"]

CONST = "archlab_"  # prefix of the constants the searcher adds to a trial's config (never a search dimension)
FAULTS_ENV = "ARCHLAB_INJECT_FAULTS"  # "N:raise,M:nan,K:die" by trial number: the fault-path tests use it
WEIGHTS_FILE = "weights.safetensors"  # the file in a trial's checkpoint folder (and in trials/NNNN/)


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs besides its parameters; pickled once to each worker."""

    space_file: str
    dataset: dict[str, Any]
    in_chans: int
    num_classes: int
    recipe: Any
    budget: dict[str, Any]
    latency: dict[str, Any]
    constraints: dict[str, float]
    latency_skip: float | None
    seed: int
    threads: int
    device: str
    run_dir: str
    save_weights: bool = True    # the study's keep_weights is not `none`: report the weights as a checkpoint


_SPACES: dict[str, Any] = {}


def _space(path: str) -> Any:
    """The search space, loaded once per process (workers run many trials)."""
    if path not in _SPACES:
        from archlab.space.search_space import load_space
        _SPACES[path] = load_space(path)
    return _SPACES[path]


def _arch_params(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(CONST)}


def _inject_fault(number: int, run_dir: str) -> str | None:
    """The fault named for this trial number in ARCHLAB_INJECT_FAULTS, if any (tests only)."""
    for item in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        n, _, kind = item.partition(":")
        if n.strip() == str(number):
            if kind == "die":  # die once: the retry must then succeed
                marker = Path(run_dir) / "logs" / f"died-{number}"
                if marker.exists():
                    return None
                marker.touch()
            return kind
    return None


def run_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """Ray Tune trainable: decode, measure latency, maybe skip, train with per-epoch reports, report final."""
    from ray import tune
    start = time.perf_counter()
    number = int(config[f"{CONST}number"])
    base: dict[str, Any] = {"number": number, "node_id": _node_id(), "hostname": socket.gethostname(),
                            "gpu_ids": _gpu_ids() if settings.device.startswith("cuda") else None}

    def report(checkpoint: Any = None, **fields: Any) -> None:
        tune.report({**base, **fields, "trial_s": time.perf_counter() - start}, checkpoint=checkpoint)

    # on a cluster without a shared filesystem this makes a node-local folder of the same path for logs
    (Path(settings.run_dir) / "logs").mkdir(parents=True, exist_ok=True)
    try:
        import torch
        torch.set_num_threads(settings.threads)
        fault = _inject_fault(number, settings.run_dir)
        if fault == "die":
            os._exit(3)  # a worker that dies mid-trial: Ray retries the trial
        if fault == "raise":
            raise RuntimeError("injected fault")
        spec = _space(settings.space_file).decode(_arch_params(config), img_size=settings.dataset["img_size"],
                                                  in_chans=settings.in_chans, num_classes=settings.num_classes)
        base.update(_measure(spec, settings))
        reason = skip_reason(base["latency_ms"], config.get(f"{CONST}front_latency"), settings)
        if reason:
            report(state="skipped", error=reason, final=True)
            return
        trained: dict[str, Any] = {}
        fields = _train(spec, settings, fault == "nan", report, trained)
        _report_complete(report, fields, trained.get("state"), spec, number)
    except Exception as err:
        if _is_tune_stop(err):
            raise
        reason = f"{type(err).__name__}: {err}"
        if "out of memory" in str(err).lower():
            reason = f"out of memory: {err}"
        (Path(settings.run_dir) / "logs" / f"trial-{number:04d}.log").write_text(traceback.format_exc())
        report(state="failed", error=reason[:500], final=True)


def _measure(spec: Any, settings: TrialSettings) -> dict[str, Any]:
    """The trial's analytic cost and measured latency, as result fields."""
    from archlab.measure.latency import LatencyCache, measure_latency
    from archlab.nn.complexity import complexity
    cost = complexity(spec)
    lat = settings.latency
    if lat.get("predictor"):  # fitted on the target device elsewhere (archlab predictor fit): predicted, not timed
        from archlab.estimators.latency_model import predict_latency
        return {"arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs,
                "latency_ms": predict_latency(spec, lat["predictor"]), "latency_source": "predicted",
                "latency_predicted": True}
    cache = LatencyCache(Path(settings.run_dir) / "latency_cache.json")
    result = measure_latency(spec, batch=lat["batch"], device=lat["device"], threads=lat["threads"],
                             backend=lat["backend"], max_seconds=lat["max_seconds"], cache=cache)
    # the objective is the drift-corrected figure (archlab.measure.latency: reference kernel); the raw median is kept
    return {"arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs, "latency_ms": result.latency_ms,
            "latency_source": "measured", "latency_raw_ms": result.median_ms, "latency_p90_ms": result.p90_ms,
            "latency_cv": result.cv, "latency_repeats": result.repeats}


def _train(spec: Any, settings: TrialSettings, diverge: bool, report: Callable[..., None],
           trained: dict[str, Any]) -> dict[str, Any]:
    """Train on the proxy data, reporting validation top-1 after every epoch but the last; the final fields.

    With `settings.save_weights`, `trained["state"]` receives the evaluated model's state dict (the one whose
    top-1 is the trial's: the EMA copy where the recipe keeps one).
    """
    from archlab.measure.data import load_data
    from archlab.measure.train import train
    recipe = settings.recipe
    if diverge:  # the injected "nan" fault: a learning rate no network survives
        recipe = {"base": recipe, "lr": 1e12} if isinstance(recipe, str) else {**recipe, "lr": 1e12}
    ds = settings.dataset
    data = load_data(ds["name"], img_size=ds["img_size"], in_chans=settings.in_chans, root=ds.get("root"),
                     val_fraction=ds["val_fraction"], seed=settings.seed, limit=ds.get("limit"),
                     val_limit=ds.get("val_limit"))

    def on_epoch(epoch: Any) -> None:
        if not epoch.last:  # the last evaluation goes out with the final result, so no scheduler cuts it off
            report(epoch=epoch.epoch, val_top1=epoch.val_top1, train_loss=epoch.train_loss)

    def on_trained(model: Any) -> None:
        trained["state"] = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}

    out = train(spec, data, recipe=recipe, budget=settings.budget, seed=settings.seed, device=settings.device,
                threads=settings.threads, callback=on_epoch, on_trained=on_trained if settings.save_weights else None)
    return {"top1": out.top1, "val_top1": out.top1, "epoch": out.epochs_run, "epochs_run": out.epochs_run,
            "train_s": out.wall_s, "images_per_s": out.images_per_s, "paused_s": out.paused_s}


def _report_complete(report: Callable[..., None], fields: dict[str, Any], state: dict[str, Any] | None, spec: Any,
                     number: int) -> None:
    """The final result of a complete trial, with its weights as a Ray Tune checkpoint when they are kept.

    `tune.report` copies the checkpoint folder to the run's storage path (RunConfig.storage_path) before it
    returns, so the temporary folder can go at once. Where a worker node cannot reach that path (no shared
    filesystem: Ray refuses with a RuntimeError), the result still goes out without weights and says why: the
    training is not lost for want of a file.
    """
    if state is None:
        report(state="complete", final=True, **fields)
        return
    from ray import tune

    from archlab.nn.weights import save_weights
    with tempfile.TemporaryDirectory(prefix=f"archlab-trial-{number:04d}-") as tmp:
        # the metadata lets the driver check that a checkpoint is this trial's before it keeps it
        save_weights(state, Path(tmp) / WEIGHTS_FILE, metadata={"arch_id": spec.arch_id, "number": str(number),
                                                                 "source": "archlab search"})
        try:
            report(state="complete", final=True, checkpoint=tune.Checkpoint.from_directory(tmp), **fields)
            return
        except RuntimeError as err:
            if _is_tune_stop(err):
                raise
            reason = f"weights not kept: {str(err).splitlines()[0][:300]}"
    report(state="complete", final=True, weights_error=reason, **fields)


def _is_tune_stop(err: BaseException) -> bool:
    """Whether `err` is Ray Tune ending the trial (a scheduler's stop), which must propagate."""
    return type(err).__name__ in ("StopIteration", "_StopTrial", "SessionTerminated")


def _gpu_ids() -> str | None:
    """The GPUs Ray gave this trial ("0", "0,1"; with fractional GPUs trials share one), or None outside Ray."""
    try:
        import ray
        return ",".join(str(g) for g in ray.get_gpu_ids()) or None
    except Exception:
        return None


def _node_id() -> str:
    """The Ray node running this trial ("" outside Ray)."""
    try:
        import ray
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return ""


def skip_reason(latency_ms: float, front_latency: float | None, settings: TrialSettings) -> str | None:
    """Why a trial with this latency should not train (the latency pre-filter), or None."""
    cap = settings.constraints.get("max_latency_ms")
    if cap is not None and latency_ms > cap:
        return f"latency {latency_ms:.3g} ms > max_latency_ms {cap:g}"
    factor = settings.latency_skip
    if factor and front_latency and latency_ms > factor * front_latency:
        return (f"latency {latency_ms:.3g} ms > {factor:g} x {front_latency:.3g} ms of the front's most accurate "
                "point: it would have to beat the best top-1 so far while being far slower")
    return None
