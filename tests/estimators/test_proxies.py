"""Zero-cost proxies: finite, deterministic, side-effect free, and the sign convention where it can be checked."""
from __future__ import annotations

import math

import pytest
import torch

from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
from archlab.core.errors import ArchlabError
from archlab.estimators.aggregate import AGGREGATES, log_rank_sum
from archlab.estimators.proxies import PROXIES, ProxyData
from archlab.estimators.score import resolve_names, score_specs
from archlab.nn.build import build_model
from archlab.nn.complexity import complexity

SIDE, CLASSES = 16, 4


def _spec(stages: tuple[StageSpec, ...], *, stem_width: int = 8, head: HeadSpec | None = None,
          **top) -> ArchSpec:
    return ArchSpec(stem=StemSpec(type="conv", width=stem_width, kernel_size=3, stride=1), stages=stages,
                    head=head or HeadSpec(), img_size=SIDE, in_chans=1, num_classes=CLASSES, **top)


# Several families, each with the parts a proxy must survive: BatchNorm and LayerNorm, SE gates, saturating and
# smooth activations, dropout and stochastic depth (random in train mode), downsampling layers.
FAMILIES = {
    "plain": _spec((StageSpec(block="plain", depth=2, width=8, stride=2, downsample="pool"),
                    StageSpec(block="plain", depth=1, width=16, stride=2, downsample="pool")),
                   head=HeadSpec(hidden=(16,), dropout=0.5)),
    "basic": _spec((StageSpec(block="basic", depth=2, width=8, stride=1),
                    StageSpec(block="basic", depth=1, width=16, stride=2)), drop_path_rate=0.2),
    "bottleneck": _spec((StageSpec(block="bottleneck", depth=1, width=16, stride=2, expand_ratio=0.25,
                                   group_width=2, se_ratio=0.25),)),
    "inverted_residual": _spec((StageSpec(block="inverted_residual", depth=2, width=8, stride=2, expand_ratio=3,
                                          se_ratio=0.25, act="hardswish", kernel_size=5),
                                StageSpec(block="inverted_residual", depth=1, width=16, stride=2, expand_ratio=6,
                                          act="relu6")),
                               head=HeadSpec(conv_width=32, act="hardswish", dropout=0.2)),
    "convnext": _spec((StageSpec(block="convnext", depth=2, width=8, stride=1, norm="layernorm", act="gelu",
                                 kernel_size=7, expand_ratio=4, downsample="layer"),
                       StageSpec(block="convnext", depth=1, width=16, stride=2, norm="layernorm", act="gelu",
                                 kernel_size=7, expand_ratio=4, downsample="layer")),
                      head=HeadSpec(norm="layernorm"), drop_path_rate=0.1, layer_scale_init=1e-6),
}


def _data(seed: int = 0, batch: int = 8, *, same: bool = False) -> ProxyData:
    gen = torch.Generator().manual_seed(seed)
    inputs, targets = [], []
    for _ in range(2):
        x = torch.randn(batch, 1, SIDE, SIDE, generator=gen)
        if same:
            x = x[:1].expand_as(x).clone()
        inputs.append(x)
        targets.append(torch.randint(0, CLASSES, (batch,), generator=gen))
    return ProxyData(tuple(inputs), tuple(targets), seed=seed)


def _model(spec: ArchSpec, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(spec)


def spec_macs(spec: ArchSpec) -> int:
    return complexity(spec).macs


def _state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {name: _model(spec) for name, spec in FAMILIES.items()}


def test_every_proxy_is_registered_with_a_cited_docstring():
    assert {"params", "macs", "synflow", "snip", "grad_norm", "jacov", "nwot", "zico", "meco"} <= set(PROXIES)
    assert {"az_nas", "rank_sum"} <= set(AGGREGATES)
    for name in PROXIES:
        assert PROXIES.get(name).__doc__, name
    for name in ("synflow", "snip", "jacov", "nwot", "zico", "meco", "az_expressivity"):
        doc = PROXIES.get(name).__doc__
        assert any(str(year) in doc for year in (2019, 2020, 2021, 2023, 2024)), name


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("name", PROXIES.names())
def test_proxy_finite_deterministic_and_side_effect_free(name, family, models):
    model = models[family]
    model.eval() if family == "plain" else model.train()  # a proxy keeps whichever mode it was given
    mode, before, rng = model.training, _state(model), torch.get_rng_state()
    data = _data()
    inputs = [x.clone() for x in data.inputs]
    first = PROXIES.get(name)(model, data)
    second = PROXIES.get(name)(model, data)
    assert isinstance(first, float) and math.isfinite(first), (name, family, first)
    assert first == second, (name, family)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), f"{name} changed the weights of {family}"
    assert model.training == mode and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng), f"{name} moved the global RNG"
    assert all(torch.equal(a, b) and not b.requires_grad for a, b in zip(inputs, data.inputs))


def test_proxies_depend_on_the_seed_where_they_draw():
    # the seed reaches the network's random parts (drop path) and AZ-NAS's random probes
    model = _model(FAMILIES["basic"])
    a, b = _data(seed=0), _data(seed=0)
    b = ProxyData(b.inputs, b.targets, seed=1)
    assert PROXIES.get("az_trainability")(model, a) != PROXIES.get("az_trainability")(model, b)
    assert PROXIES.get("snip")(model, a) != PROXIES.get("snip")(model, b)


def _wide(width: int) -> ArchSpec:
    return _spec((StageSpec(block="basic", depth=2, width=width, stride=2),
                  StageSpec(block="basic", depth=2, width=2 * width, stride=2)), stem_width=width)


@pytest.mark.parametrize("name", ["params", "macs", "synflow"])
def test_more_capacity_at_equal_depth_scores_higher(name):
    data = _data()
    scores = [PROXIES.get(name)(_model(_wide(w)), data) for w in (4, 8, 16)]
    assert scores[0] < scores[1] < scores[2], scores


def test_macs_counts_other_modules_and_agrees_with_the_analytic_count():
    spec = FAMILIES["inverted_residual"]
    model, data = _model(spec), _data()
    analytic = PROXIES.get("macs")(model, data)
    counted = PROXIES.get("macs")(torch.nn.Sequential(model), data)  # not an ArchNet: torch's flop counter
    assert analytic == spec_macs(spec) and abs(counted - analytic) / analytic < 0.02


@pytest.mark.parametrize("name", ["jacov", "nwot"])
def test_inputs_the_network_cannot_tell_apart_score_lower(name):
    # jacov and nwot reward networks that separate inputs; identical inputs are the extreme of not separating
    model = _model(FAMILIES["basic"])
    distinct, same = PROXIES.get(name)(model, _data()), PROXIES.get(name)(model, _data(same=True))
    assert distinct > same or same == -math.inf


def test_score_ranges_follow_the_published_definitions(models):
    data = _data()
    for model in models.values():
        assert PROXIES.get("az_trainability")(model, data) <= 1e-9    # -(s + 1/s - 2) <= 0, highest at s = 1
        assert PROXIES.get("meco")(model, data) >= -1e-6              # a correlation matrix is PSD
        assert PROXIES.get("az_expressivity")(model, data) > 0


def test_log_rank_sum_is_azs_aggregation():
    scores = {"a": [1.0, 3.0, 2.0], "b": [10.0, 30.0, float("nan")]}
    agg = log_rank_sum(scores)
    assert agg[1] == 0.0 and agg[1] == max(agg)                     # best on both: log(3/3) * 2
    assert agg[2] == pytest.approx(math.log(2 / 3) + math.log(1 / 3))  # NaN ranks lowest
    with pytest.raises(ArchlabError, match="az_trainability"):
        AGGREGATES.get("az_nas")({"macs": [1.0]})


def test_names_resolve_with_did_you_mean():
    proxies, aggregates = resolve_names(["az_nas", "params"])
    assert aggregates == ["az_nas"] and set(AGGREGATES.get("az_nas").inputs) | {"params"} == set(proxies)
    with pytest.raises(ArchlabError, match="did you mean 'synflow'"):
        resolve_names(["synflw"])
    with pytest.raises(ArchlabError, match="no proxy named"):
        resolve_names([])


def test_score_specs_rows_and_input_mismatch():
    specs = [FAMILIES["basic"], _wide(4)]
    rows = score_specs(specs, _data(), ["params", "nwot", "az_nas"], seed=0)
    assert [r["arch_id"] for r in rows] == [s.arch_id for s in specs]
    assert all(isinstance(r["params"], int) and isinstance(r["macs"], int) for r in rows)
    assert {"nwot", "az_nas", "az_expressivity"} <= set(rows[0])
    assert rows == score_specs(specs, _data(), ["params", "nwot", "az_nas"], seed=0)
    wrong = FAMILIES["basic"].replace(img_size=24)
    with pytest.raises(ArchlabError, match="takes 1x24x24 inputs but the proxy data are 1x16x16"):
        score_specs([wrong], _data(), ["params"])


def test_proxy_data_rejects_bad_minibatches():
    with pytest.raises(ArchlabError, match="N >= 2"):
        ProxyData((torch.zeros(1, 1, 4, 4),), (torch.zeros(1, dtype=torch.long),))
    with pytest.raises(ArchlabError, match="one or more minibatches"):
        ProxyData((), ())
    one = ProxyData((torch.zeros(6, 1, 4, 4),), (torch.zeros(6, dtype=torch.long),))
    assert [len(x) for x, _ in one.pairs()] == [3, 3]  # ZiCo's two minibatches from one
    with pytest.raises(ArchlabError, match="got str"):
        PROXIES.get("snip")(_model(FAMILIES["basic"]), "images")


def test_plain_minibatches_are_accepted():
    model, data = _model(FAMILIES["basic"]), _data()
    pairs = list(zip(data.inputs, data.targets))
    assert PROXIES.get("zico")(model, pairs) == PROXIES.get("zico")(model, data)
    assert PROXIES.get("nwot")(model, pairs[0]) == PROXIES.get("nwot")(model, data)
