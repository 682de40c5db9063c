"""Scoring networks with zero-cost proxies: minibatches from a study's data, one network, a sampled population.

What `archlab proxies` and bench/proxy_ranking.py run. A network is built from its spec with the torch seed
given (the builder's own initialisation, Kaiming fan-out convs), scored by every requested proxy on the same
minibatches, and the population's aggregates are computed last, over the networks scored together.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, did_you_mean
from archlab.estimators.aggregate import AGGREGATES
from archlab.estimators.proxies import PROXIES, ProxyData
from archlab.measure.data import DataSplits
from archlab.space.search_space import SearchSpace

__all__ = ["DEFAULT_BATCH", "finite_or_none", "proxy_data", "resolve_names", "score_model", "score_space",
           "score_specs"]

DEFAULT_BATCH = 32  # half the 64 of Abdelfattah et al.: two minibatches of 64 miss 0.5 s per proxy on one thread


def proxy_data(data: DataSplits, *, batch_size: int = DEFAULT_BATCH, batches: int = 2, seed: int = 0) -> ProxyData:
    """`batches` seeded minibatches of the training split, normalised with its pixel statistics as the trainer does."""
    if batch_size < 2 or batches < 1:
        raise ArchlabError(f"proxy minibatches need batch_size >= 2 and batches >= 1, got batch_size={batch_size}, "
                           f"batches={batches}")
    n = len(data.train)
    if n < batch_size * batches:
        raise ArchlabError(f"{data.name}: {batches} minibatches of {batch_size} need {batch_size * batches} training "
                           f"images, the split has {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:batch_size * batches]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    inputs, targets = [], []
    for idx in order.split(batch_size):
        inputs.append((data.train.images[idx].float() / 255.0 - mean) / std)
        targets.append(data.train.labels[idx].clone())
    return ProxyData(tuple(inputs), tuple(targets), seed=seed)


def resolve_names(names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(proxies to compute, aggregates to form) for the requested names (None: every proxy and aggregate).

    An aggregate pulls in the proxies it reads; an unknown name is an ArchlabError with a did-you-mean hint.
    """
    if names is None:
        return PROXIES.names(), AGGREGATES.names()
    if not names:
        raise ArchlabError("no proxy named; give one or more of " + ", ".join(PROXIES.names() + AGGREGATES.names()))
    proxies: list[str] = []
    aggregates: list[str] = []
    for name in names:
        if name in AGGREGATES:
            aggregates.append(name)
            proxies += [p for p in AGGREGATES.get(name).inputs]
        elif name in PROXIES:
            proxies.append(name)
        else:
            raise ArchlabError(f"unknown proxy {name!r}" + did_you_mean(name, PROXIES.names() + AGGREGATES.names()))
    return list(dict.fromkeys(proxies)), list(dict.fromkeys(aggregates))


def score_model(model: torch.nn.Module, data: ProxyData, names: Sequence[str], *,
                times: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Every proxy in `names` on one network; with `times`, each proxy's [wall, CPU] seconds are appended.

    The process CPU time is what a proxy costs on one thread even while other jobs share the cores (the wall
    time then includes waiting for a core).
    """
    scores = {}
    for name in names:
        fn = PROXIES.lookup(name)
        wall, cpu = time.perf_counter(), time.process_time()
        scores[name] = fn(model, data)
        if times is not None:
            times.setdefault(name, []).append([time.perf_counter() - wall, time.process_time() - cpu])
    return scores


def _check_fit(spec: ArchSpec, data: ProxyData) -> None:
    want = (spec.in_chans, spec.img_size, spec.img_size)
    if want != data.shape:
        raise ArchlabError(f"network {spec.arch_id} takes {want[0]}x{want[1]}x{want[2]} inputs but the proxy data are "
                           f"{'x'.join(map(str, data.shape))}")


def score_specs(specs: Sequence[ArchSpec], data: ProxyData, names: Sequence[str] | None = None, *,
                seed: int = 0, times: dict[str, list[float]] | None = None) -> list[dict[str, Any]]:
    """One row per spec: arch_id, params, MACs and every requested proxy and aggregate (higher = better).

    Each network is built after torch.manual_seed(seed); a network that cannot run on the data's input
    (its feature map shrinks to nothing, say) is an ArchlabError naming it.
    """
    from archlab.nn.build import build_model
    from archlab.nn.complexity import complexity
    proxies, aggregates = resolve_names(names)
    rows = []
    for spec in specs:
        _check_fit(spec, data)
        cost = complexity(spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(spec)
        try:
            scores = score_model(model, data, proxies, times=times)
        except RuntimeError as err:  # a shape that does not fit surfaces as torch's RuntimeError
            raise ArchlabError(f"network {spec.arch_id} does not run on {'x'.join(map(str, data.shape))} inputs: "
                               f"{str(err).splitlines()[0]}") from None
        row: dict[str, Any] = {"arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs}
        row.update((k, v) for k, v in scores.items() if k not in row)  # params and macs stay exact integers
        rows.append(row)
    for name in aggregates:
        agg = AGGREGATES.get(name)
        values = agg({p: [row[p] for row in rows] for p in agg.inputs})
        for row, value in zip(rows, values):
            row[name] = value
    return rows


def score_space(space: SearchSpace, n: int, *, data: DataSplits, names: Sequence[str] | None = None, seed: int = 0,
                batch_size: int = DEFAULT_BATCH) -> list[dict[str, Any]]:
    """`n` seeded feasible samples of `space`, decoded at the data's input side, channels and classes, scored."""
    if n < 1:
        raise ArchlabError(f"-n must be >= 1, got {n}")
    fit = dict(img_size=data.img_size, in_chans=data.in_chans, num_classes=data.num_classes)
    try:
        specs = [spec for _, spec in space.sample(n, seed=seed, **fit)]
    except ArchlabError as err:  # the sample says why a draw failed; the data's input shape is added here
        shape = f"{data.in_chans}x{data.img_size}x{data.img_size}"
        raise ArchlabError(f"{err} (at {shape} inputs, the data's)") from None
    return score_specs(specs, proxy_data(data, batch_size=batch_size, seed=seed), names, seed=seed)


def finite_or_none(value: float) -> float | None:
    """`value`, or None where it is not finite (JSON has no infinities)."""
    return value if math.isfinite(value) else None
