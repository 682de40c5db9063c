"""Per-device latency predictors: a per-part lookup table summed over the network, and regressors on spec features.

nn-Meter (Zhang et al., MobiSys 2021) predicts a network's latency from its kernels, each timed on the device;
HELP (Lee et al., NeurIPS 2021) and LitePred (Feng et al., NSDI 2024) learn from a few hundred measured networks.
Here a network is cut into the pieces archlab builds it from (`decompose`: the stem, every stage's downsample
layer, every block at its input size, every stage's pooling and the head), and three kinds of model share a
file: `lookup` (the measured time of each distinct part, summed, through a linear overhead fit; parts never
timed come from a regressor on part features), `linear` and `gbm` (a linear model and gradient-boosted trees
on log latency from network features: MACs, depthwise MACs, parameters, activation memory, layer counts).
Every model is stored as plain JSON numbers (no pickle), so a file fitted on one device predicts anywhere;
`archlab.estimators.latency_fit` measures and fits, this module reads, checks and predicts.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, shorten
from archlab.core.files import atomic_write_text
from archlab.nn.build import ArchNet, build_model
from archlab.nn.layers import ACT_LAYERS

__all__ = ["FORMAT", "KINDS", "NETWORK_FEATURES", "PART_FEATURES", "VERSION", "LatencyPredictor", "Part",
           "decompose", "fit_gbm", "fit_linear", "gbm_to_json", "load_predictor", "lookup_parts", "network_features",
           "part_features", "part_modules", "predict_latency", "predict_model", "space_hash", "write_predictor"]

FORMAT = "archlab-latency-predictor"
VERSION = 1
KINDS = ("lookup", "linear", "gbm")
PART_KINDS = ("stem", "downsample", "block", "pool", "head")

# activations by the class that implements them, so act_elems_<name> counts the elements each kind touches
_ACT_NAMES = {ACT_LAYERS.get(n): n for n in ACT_LAYERS if ACT_LAYERS.get(n) is not None}
_GATES = (nn.Sigmoid, nn.Hardsigmoid)
STATS = ("macs", "dw_macs", "params", "calls", "convs", "dw_convs", "linears", "norms", "acts", "gates", "pools",
         "out_elems", "in_elems", *(f"act_elems_{n}" for n in _ACT_NAMES.values()))
PART_FEATURES = (*STATS, *(f"is_{k}" for k in PART_KINDS))
NETWORK_FEATURES = (*STATS, "blocks", "stem_macs", "head_macs", "img_pixels")


# --- decomposition --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Part:
    """One separately timed piece of a network and the statistics of one batch-1 forward pass through it."""

    kind: str                        # stem | downsample | block | pool | head
    where: str                       # e.g. "stages[2].blocks[1]"
    key: str                         # canonical JSON of everything that sets the part's latency at a fixed batch
    in_shape: tuple[int, ...]        # C, H, W
    out_shape: tuple[int, ...]
    stats: dict[str, float]          # STATS: MACs, layer counts, elements written

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the part (convolutions and linear layers, as archlab.nn.complexity counts)."""
        return int(self.stats["macs"])


class _Head(nn.Module):
    """The network after its last stage (conv head, pooling, norm, hidden layers, classifier), run as ArchNet does."""

    def __init__(self, net: ArchNet) -> None:
        super().__init__()
        self.layers = nn.ModuleList(m for name, m in net.named_children() if name not in ("stem", "stages"))
        self._net = (net,)  # a tuple: not registered, so the head's modules are only its own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._net[0]
        return net.forward_head(net.conv_head(x))


def _pieces(net: ArchNet) -> Iterable[tuple[str, str, nn.Module, dict[str, Any], dict[str, Any]]]:
    """(kind, where, module, description, position) of every part, in forward order.

    The description names what the part is; with the position (the stage's stride and downsampling, first
    block or not) and the input shape it fixes the part's output and statistics.
    """
    spec = net.spec
    yield "stem", "stem", net.stem, {"stem": spec.stem.to_dict()}, {}
    for i, (stage, module) in enumerate(zip(spec.stages, net.stages)):
        # depth, stride and downsample say where a block sits, not what it is: its in and out shapes (in the
        # key) carry its stride, so the same block in another place shares its timing
        desc = {k: v for k, v in stage.to_dict().items() if k not in ("depth", "stride", "downsample")}
        desc["layer_scale_init"] = spec.layer_scale_init
        place = {"stride": stage.stride, "downsample": stage.downsample}
        if not isinstance(module.downsample, nn.Identity):
            yield "downsample", f"stages[{i}].downsample", module.downsample, desc, place
        for j, block in enumerate(module.blocks):
            yield "block", f"stages[{i}].blocks[{j}]", block, desc, {**place, "first": j == 0}
        if not isinstance(module.pool, nn.Identity):
            yield "pool", f"stages[{i}].pool", module.pool, desc, place
    yield "head", "head", _Head(net), {"head": spec.head.to_dict(), "num_classes": spec.num_classes}, {}


def _traced(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Run `module` on `x` (batch 1) once, counting what its leaf layers do.

    MACs are counted as archlab.nn.complexity counts them: convolutions and linear layers only, bias excluded.
    """
    stats = dict.fromkeys(STATS, 0.0)

    def hook(m: nn.Module, inputs: Any, out: Any) -> None:
        n = out.numel() if isinstance(out, torch.Tensor) else 0
        stats["calls"] += 1
        stats["out_elems"] += n
        if isinstance(m, nn.Conv2d):
            macs = n * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            stats["convs"] += 1
            stats["macs"] += macs
            if m.groups > 1 and m.groups == m.in_channels:
                stats["dw_convs"] += 1
                stats["dw_macs"] += macs
        elif isinstance(m, nn.Linear):
            stats["linears"] += 1
            stats["macs"] += n * m.in_features
        elif type(m) in _ACT_NAMES:
            stats["acts"] += 1
            stats[f"act_elems_{_ACT_NAMES[type(m)]}"] += n
        elif isinstance(m, _GATES):
            stats["gates"] += 1
        elif "Norm" in type(m).__name__:
            stats["norms"] += 1
        elif "Pool" in type(m).__name__:
            stats["pools"] += 1

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if not any(True for _ in m.children()) and not isinstance(m, nn.Identity)]
    try:
        y = module(x)
    finally:
        for h in handles:
            h.remove()
    stats["params"] = float(sum(p.numel() for p in module.parameters()))
    stats["in_elems"] = float(x[0].numel())
    return y, stats


@functools.lru_cache(maxsize=2048)
def decompose(spec: ArchSpec) -> tuple[Part, ...]:
    """Cut a network into its parts (stem, downsample layers, blocks, pools, head), in forward order.

    One batch-1 forward pass on PyTorch's meta device (shapes only: no weights, no arithmetic, a few ms) gives
    each part's input shape (part of its key) and statistics; `part_modules` gives the same parts of a real
    network, for timing. Memoised: specs are frozen, and a search asks again for the networks it revisits.
    """
    with torch.device("meta"):
        net = build_model(spec)
    net.eval()
    in_shape: tuple[int, ...] = (spec.in_chans, spec.img_size, spec.img_size)
    out: list[Part] = []
    with torch.no_grad():
        for kind, where, module, desc, place in _pieces(net):
            # meta kernels run in Python (a few ms a layer): a part seen before at this input is not traced again
            exact = _canonical({"part": kind, **desc, **place, "in": list(in_shape)})
            if exact not in _TRACED:
                y, stats = _traced(module, torch.zeros(1, *in_shape, device="meta"))
                if len(_TRACED) >= 100_000:
                    _TRACED.clear()
                _TRACED[exact] = (tuple(y.shape[1:]), stats)
            out_shape, stats = _TRACED[exact]
            key = _canonical({"part": kind, **desc, "in": list(in_shape), "out": list(out_shape)})
            out.append(Part(kind, where, key, in_shape, out_shape, dict(stats)))
            in_shape = out_shape
    return tuple(out)


_TRACED: dict[str, tuple[tuple[int, ...], dict[str, float]]] = {}


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def part_modules(net: ArchNet) -> list[tuple[str, nn.Module]]:
    """(where, module) of every part of a built network, in `decompose`'s order; run in turn they are its forward."""
    return [(where, module) for _, where, module, _, _ in _pieces(net)]


def part_features(part: Part) -> list[float]:
    """PART_FEATURES of one part: log1p of its statistics and its kind, one-hot."""
    return [math.log1p(part.stats[s]) for s in STATS] + [float(part.kind == k) for k in PART_KINDS]


def network_features(parts: Sequence[Part], img_size: int) -> list[float]:
    """NETWORK_FEATURES: the parts' statistics summed, the number of blocks, stem and head MACs; log1p of each."""
    totals = {s: sum(p.stats[s] for p in parts) for s in STATS}
    totals["blocks"] = sum(p.kind == "block" for p in parts)
    totals["stem_macs"] = sum(p.stats["macs"] for p in parts if p.kind == "stem")
    totals["head_macs"] = sum(p.stats["macs"] for p in parts if p.kind == "head")
    totals["img_pixels"] = img_size * img_size
    return [math.log1p(totals[f]) for f in NETWORK_FEATURES]


# --- serialisable regressors ------------------------------------------------------------------------------------

def fit_linear(x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """A linear model with Huber loss and a ridge penalty on standardised features (scikit-learn's HuberRegressor).

    Huber, not least squares: on a shared machine a few measurements come out far too slow (the process lost
    its core), and squared loss would bend the whole fit towards them.
    """
    from sklearn.linear_model import HuberRegressor
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = HuberRegressor(epsilon=1.35, alpha=1.0, max_iter=2000).fit((x - mean) / scale, y)
    return {"type": "linear", "features": list(names), "mean": mean.tolist(), "scale": scale.tolist(),
            "coef": np.asarray(model.coef_, dtype=float).tolist(), "intercept": float(model.intercept_)}


def fit_gbm(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], seed: int) -> dict[str, Any]:
    """Gradient-boosted regression trees (scikit-learn, Huber loss), written out as arrays: no pickle."""
    from sklearn.ensemble import GradientBoostingRegressor
    # Huber loss for the reason fit_linear gives; boosting rounds grow with the data (with a handful of
    # networks, 200 rounds would only fit their noise)
    rounds = min(200, max(20, 4 * len(y)))
    model = GradientBoostingRegressor(loss="huber", n_estimators=rounds, max_depth=3, learning_rate=0.05,
                                      subsample=0.8, min_samples_leaf=3, random_state=seed).fit(x, y)
    return gbm_to_json(model, names)


def gbm_to_json(model: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A fitted GradientBoostingRegressor as plain numbers: its initial value and every tree's (final) leaf values."""
    trees = []
    for (est,) in model.estimators_:
        t = est.tree_
        trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                      "value": t.value[:, 0, 0].tolist()})
    # every regression loss starts from a constant (a DummyRegressor: the mean, or the median for huber)
    init = float(np.asarray(model.init_.constant_).ravel()[0])
    return {"type": "gbm", "features": list(names), "init": init, "learning_rate": float(model.learning_rate),
            "trees": trees}


def predict_model(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Evaluate a stored `linear` or `gbm` model on rows of features (what scikit-learn's predict would give)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if model["type"] == "linear":
        return ((x - np.asarray(model["mean"])) / np.asarray(model["scale"])) @ np.asarray(model["coef"]) \
            + model["intercept"]
    xf = x.astype(np.float32)  # scikit-learn's trees compare float32 features with float64 thresholds
    out = np.full(len(x), model["init"], dtype=float)
    for tree in model["trees"]:
        left, right, feature, threshold, value = (tree[k] for k in ("left", "right", "feature", "threshold", "value"))
        for i, row in enumerate(xf):
            node = 0
            while left[node] != -1:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            out[i] += model["learning_rate"] * value[node]
    return out


# --- the predictor file -------------------------------------------------------------------------------------------

def space_hash(data: Any) -> str:
    """A stable hash of a search space's content (the parsed file: comments and layout do not count)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _checksum(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def write_predictor(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a predictor file atomically, with a checksum over its content."""
    data = {**data, "format": FORMAT, "version": VERSION}
    data["checksum"] = _checksum(data)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class LatencyPredictor:
    """A loaded, checked predictor file: the target (device, threads, batch, input), the space and its models."""

    data: dict[str, Any]
    path: str = ""

    @property
    def target(self) -> dict[str, Any]:
        """Where the latencies were measured: device, device_name, threads, batch, backend, stack, input."""
        return self.data["target"]

    @property
    def kinds(self) -> tuple[str, ...]:
        """The model kinds the file holds."""
        return tuple(k for k in KINDS if k in self.data["models"])

    @property
    def selected(self) -> str:
        """The kind with the lowest cross-validated error at fit time: the default for `predict`."""
        return self.data["selected"]

    def describe(self) -> dict[str, Any]:
        """What a search using this file says about its latency: the file, the kind it predicts with, where and
        how the fit's latencies were measured, and that kind's cross-validated accuracy where the file holds it."""
        t, fit = self.target, self.data.get("fit") or {}
        out: dict[str, Any] = {"source": "predicted", "predictor": self.path, "checksum": self.data.get("checksum"),
                               "kind": self.selected, "space": self.data["space"]["name"],
                               **{k: t[k] for k in ("device", "device_name", "threads", "batch", "backend",
                                                    "img_size", "in_chans", "num_classes")},
                               "fit_networks": fit.get("n"), "fit_source": fit.get("source", "measured")}
        cv = (self.data.get("cv") or {}).get(self.selected)
        if isinstance(cv, dict):  # out-of-fold: each network predicted by a fit that did not see it
            out["cv"] = {k: cv[k] for k in ("n", "within_10", "within_5", "mape", "spearman") if k in cv}
        return out

    def _check_input(self, spec: ArchSpec) -> None:
        t = self.target
        got = (spec.in_chans, spec.img_size, spec.num_classes)
        want = (t["in_chans"], t["img_size"], t["num_classes"])
        if got != want:
            raise ArchlabError(f"{self.path or 'latency predictor'}: fitted for {want[0]}x{want[1]}x{want[1]} inputs "
                               f"and {want[2]} classes, got a network for {got[0]}x{got[1]}x{got[1]} and {got[2]}")

    def predict_all(self, spec: ArchSpec, parts: Sequence[Part] | None = None) -> dict[str, float]:
        """Predicted latency in ms by every kind the file holds."""
        self._check_input(spec)
        parts = parts if parts is not None else decompose(spec)
        models = self.data["models"]
        out: dict[str, float] = {}
        feats = np.asarray([network_features(parts, spec.img_size)])
        for kind in ("linear", "gbm"):
            if kind in models:
                out[kind] = float(np.exp(predict_model(models[kind], feats)[0]))
        if "lookup" in models:
            out["lookup"] = _predict_lookup(models["lookup"], parts)
        return out

    def predict(self, spec: ArchSpec, kind: str | None = None) -> float:
        """Predicted latency in ms of `spec` by `kind` (default: the selected kind)."""
        kind = kind or self.selected
        if kind not in self.kinds:
            raise ArchlabError(f"{self.path or 'latency predictor'}: holds no {kind!r} model "
                               f"(it holds {', '.join(self.kinds)})")
        return self.predict_all(spec)[kind]


def lookup_parts(lookup: dict[str, Any], parts: Sequence[Part]) -> tuple[float, int]:
    """Sum of the parts' times (the table's where measured, else the part model's) and how many were in the table."""
    table, total, hits = lookup["table"], 0.0, 0
    misses = [p for p in parts if p.key not in table]
    if misses:
        guess = np.exp(predict_model(lookup["part_model"], np.asarray([part_features(p) for p in misses])))
        total += float(guess.sum())
    for p in parts:
        if p.key in table:
            total += table[p.key]
            hits += 1
    return total, hits


def _predict_lookup(lookup: dict[str, Any], parts: Sequence[Part]) -> float:
    summed, _ = lookup_parts(lookup, parts)
    return lookup["intercept"] + lookup["slope"] * summed


def predict_latency(spec: ArchSpec, predictor: LatencyPredictor | str | Path, kind: str | None = None) -> float:
    """Predicted latency in ms of `spec` on the predictor's device: the API a search calls instead of measuring."""
    if not isinstance(predictor, LatencyPredictor):
        predictor = _cached_predictor(str(predictor))
    return predictor.predict(spec, kind)


_LOADED: dict[str, tuple[float, LatencyPredictor]] = {}


def _cached_predictor(path: str) -> LatencyPredictor:
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        mtime = -1.0
    hit = _LOADED.get(path)
    if hit is None or hit[0] != mtime:
        hit = (mtime, load_predictor(path))
        _LOADED[path] = hit
    return hit[1]


# --- reading and checking ---------------------------------------------------------------------------------------

def load_predictor(path: str | Path, *, device: str | None = None, device_name: str | None = None,
                   threads: int | None = None, space: str | None = None) -> LatencyPredictor:
    """Read and check a predictor file; with `device`, `device_name`, `threads` or `space` (a space hash) given,
    a file fitted for another one is refused. Every problem is an ArchlabError naming the file, what and why."""
    from archlab.core.yamlio import load_json_text, read_text_file
    name = str(path)
    try:
        data = load_json_text(read_text_file(path), file=name)
    except ArchlabError as err:
        raise ArchlabError(f"{name}: is not a readable latency predictor file: {err}") from None
    _check_file(name, data)
    t = data["target"]
    for what, want, got in (("device", device, t["device"]), ("device_name", device_name, t["device_name"]),
                            ("threads", threads, t["threads"])):
        if want is not None and want != got:
            raise ArchlabError(f"{name}: was fitted for {what} {got!r}, but {want!r} was asked for; a predictor "
                               f"only holds for the device and settings it was measured on (fit one there)")
    if space is not None and space != data["space"]["hash"]:
        raise ArchlabError(f"{name}: was fitted on space {data['space']['name']!r} (content hash "
                           f"{data['space']['hash']}), not on this space (hash {space}); fit a predictor on it")
    return LatencyPredictor(data, name)


def _corrupt(name: str, key: str, rule: str, value: Any = None) -> ArchlabError:
    shown = "" if value is None else f", got {shorten(repr(value))}"
    return ArchlabError(f"{name}: {key} {rule}{shown} (a corrupt or hand-edited latency predictor file)")


_TARGET_KEYS = {"device": str, "device_name": str, "threads": int, "batch": int, "img_size": int, "in_chans": int,
                "num_classes": int, "backend": str, "stack": str}


def _check_file(name: str, data: Any) -> None:
    """The file's shape: format, version, checksum, target, space and every model's arrays."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchlabError(f"{name}: is not an archlab latency predictor file (format must be {FORMAT!r}, got "
                           f"{shorten(repr(data.get('format') if isinstance(data, dict) else type(data).__name__))})")
    if data.get("version") != VERSION:
        raise ArchlabError(f"{name}: is a version {data.get('version')!r} predictor file; this archlab reads version "
                           f"{VERSION} (fit it again)")
    if data.get("checksum") != _checksum(data):
        raise _corrupt(name, "checksum", "does not match the content", data.get("checksum"))
    target = data.get("target")
    if not isinstance(target, dict):
        raise _corrupt(name, "target", "must be a mapping", target)
    for key, kind in _TARGET_KEYS.items():
        if not isinstance(target.get(key), kind) or isinstance(target.get(key), bool):
            raise _corrupt(name, f"target.{key}", f"must be {'a string' if kind is str else 'an integer'}",
                           target.get(key))
    space = data.get("space")
    if not isinstance(space, dict) or not isinstance(space.get("hash"), str) or not isinstance(space.get("name"), str):
        raise _corrupt(name, "space", "must hold a name and a hash", space)
    models = data.get("models")
    if not isinstance(models, dict) or not models or set(models) - set(KINDS):
        raise _corrupt(name, "models", f"must map some of {', '.join(KINDS)} to models", models and list(models))
    if data.get("selected") not in models:
        raise _corrupt(name, "selected", "must name one of the models", data.get("selected"))
    for kind, model in models.items():
        if kind == "lookup":
            _check_lookup(name, model)
        else:
            _check_model(name, f"models.{kind}", model, NETWORK_FEATURES)


def _check_model(name: str, where: str, model: Any, features: tuple[str, ...]) -> None:
    if not isinstance(model, dict) or model.get("type") not in ("linear", "gbm"):
        raise _corrupt(name, f"{where}.type", "must be linear or gbm", model.get("type") if isinstance(model, dict)
                       else model)
    if model.get("features") != list(features):
        raise _corrupt(name, f"{where}.features", "are not the features this archlab computes (fit it again)")
    n = len(features)
    if model["type"] == "linear":
        for key in ("mean", "scale", "coef"):
            if not _numbers(model.get(key), n):
                raise _corrupt(name, f"{where}.{key}", f"must be {n} finite numbers")
        if not _numbers([model.get("intercept")], 1):
            raise _corrupt(name, f"{where}.intercept", "must be a finite number", model.get("intercept"))
        return
    if not _numbers([model.get("init"), model.get("learning_rate")], 2) or not isinstance(model.get("trees"), list):
        raise _corrupt(name, f"{where}", "must hold init, learning_rate and trees")
    for i, tree in enumerate(model["trees"]):
        _check_tree(name, f"{where}.trees[{i}]", tree, n)


def _check_tree(name: str, where: str, tree: Any, n_features: int) -> None:
    keys = ("left", "right", "feature", "threshold", "value")
    if not isinstance(tree, dict) or any(not isinstance(tree.get(k), list) for k in keys):
        raise _corrupt(name, where, f"must hold the lists {', '.join(keys)}")
    size = len(tree["left"])
    if size == 0 or any(len(tree[k]) != size for k in keys) or not _numbers(tree["threshold"] + tree["value"],
                                                                             2 * size):
        raise _corrupt(name, where, "must hold equally long, non-empty lists of finite numbers")
    for node in range(size):
        left, right, feature = tree["left"][node], tree["right"][node], tree["feature"][node]
        # children come after their parent in scikit-learn's layout, so a walk always ends at a leaf
        leaf = left == -1 and right == -1
        inner = all(isinstance(c, int) and node < c < size for c in (left, right)) \
            and isinstance(feature, int) and 0 <= feature < n_features
        if not (leaf or inner):
            raise _corrupt(name, f"{where} node {node}", "has children or a feature out of range",
                           (left, right, feature))


def _check_lookup(name: str, model: Any) -> None:
    if not isinstance(model, dict) or not isinstance(model.get("table"), dict):
        raise _corrupt(name, "models.lookup.table", "must be a mapping of part keys to milliseconds")
    values = list(model["table"].values())
    if not _numbers(values, len(values)) or any(v <= 0 for v in values):
        raise _corrupt(name, "models.lookup.table", "must hold positive milliseconds")
    if not _numbers([model.get("intercept"), model.get("slope")], 2):
        raise _corrupt(name, "models.lookup", "must hold a finite intercept and slope")
    _check_model(name, "models.lookup.part_model", model.get("part_model"), PART_FEATURES)


def _numbers(values: Any, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
