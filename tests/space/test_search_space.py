"""archlab.space.search_space: the shipped spaces, canonical points, decoding round trips, seeded sampling, Optuna
define-by-run, scaling, size counting and analytic constraints."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import optuna
import pytest
import yaml

from archlab.arch.scaling import scale
from archlab.arch.zoo import get_spec
from archlab.core.errors import ArchlabError, SpecError
from archlab.nn.complexity import complexity
from archlab.space.search_space import InvalidPointError, SearchSpace, _Chooser, load_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = {name: ROOT / "search_spaces" / f"{name}.yaml"
          for name in ("mobile", "resnet_convnext", "efficientnet_scaling")}
IMAGENET = dict(img_size=224, in_chans=3, num_classes=1000)
PROXY = dict(img_size=32, in_chans=1, num_classes=10)   # the default study: Fashion-MNIST at 32 px

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def spaces() -> dict[str, SearchSpace]:
    return {name: load_space(path) for name, path in SPACES.items()}


def space_of(text: str) -> SearchSpace:
    return SearchSpace.from_dict(yaml.safe_load(text), text=text)


# --- canonical networks are points ---------------------------------------------------------------------------

def _mbconv_rows(widths, depths, kernels, se):
    params = {}
    for i, (w, d, k) in enumerate(zip(widths, depths, kernels)):
        params[f"stage{i}.se_ratio"] = se
        if se:
            params[f"stage{i}.se_gate"] = "sigmoid"
        if i == 0:
            continue
        params.update({f"stage{i}.width": w, f"stage{i}.depth": d, f"stage{i}.kernel_size": k,
                       f"stage{i}.expand_ratio": 6})
    return params


MOBILENET_V2 = {"act": "relu6", "drop_path_rate": 0.0, "stem.width": 32, "stem.stride": 2, "head.conv_width": 1280,
                "scaling.width_mult": 1.0,
                **_mbconv_rows((16, 24, 32, 64, 96, 160, 320), (1, 2, 3, 4, 3, 3, 1), (3,) * 7, 0.0)}
EFFICIENTNET_B0 = {"act": "silu", "drop_path_rate": 0.2, "stem.width": 32, "stem.stride": 2, "head.conv_width": 1280,
                   "scaling.width_mult": 1.0,
                   **_mbconv_rows((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1), (3, 3, 5, 3, 5, 5, 3), 0.25)}


def _four_stages(depths, widths, width_key, extra):
    params = {}
    for i, (d, w) in enumerate(zip(depths, widths)):
        params[f"stage{i}.depth"] = d
        params[f"stage{i}.{width_key}"] = w
        params.update({f"stage{i}.{k}": v for k, v in extra.items()})
    return params


RESNET50 = {"block": "bottleneck", "act": "relu", "norm": "batchnorm", "downsample": "stride", "drop_path_rate": 0.0,
            "stem.type": "conv", "stem.width": 64, "head.norm": "none",
            **_four_stages((3, 4, 6, 3), (256, 512, 1024, 2048), "bottleneck.width",
                           {"kernel_size": 3, "bottleneck.expand_ratio": 0.25, "bottleneck.group_width": None})}
CONVNEXT_TINY = {"block": "convnext", "act": "gelu", "norm": "layernorm", "downsample": "layer", "acts": "one",
                 "norms": "one", "drop_path_rate": 0.1, "layer_scale_init": 1e-6, "stem.type": "patchify",
                 "stem.width": 96, "stem.patchify.norm": "layernorm", "head.norm": "layernorm",
                 **_four_stages((3, 3, 9, 3), (96, 192, 384, 768), "width",
                                {"convnext.kernel_size": 7, "convnext.expand_ratio": 4})}


@pytest.mark.parametrize("space_name, params, network", [
    ("mobile", MOBILENET_V2, "mobilenet_v2"),
    ("mobile", EFFICIENTNET_B0, "efficientnet_b0"),
    ("resnet_convnext", RESNET50, "resnet50"),
    ("resnet_convnext", CONVNEXT_TINY, "convnext_tiny"),
    ("efficientnet_scaling", {"scaling.phi": 0.0, "scaling.alpha": 1.25, "scaling.beta": 1.05}, "efficientnet_b0"),
])
def test_canonical_networks_are_points(spaces, space_name, params, network):
    spec = spaces[space_name].decode(params, **IMAGENET)
    assert spec.arch_id == get_spec(network).arch_id
    assert spaces[space_name].violations(spec) == []


def test_landmarks_decode_and_zoo_landmarks_equal_the_zoo(spaces):
    from archlab.arch.zoo import ZOO
    seen = 0
    for space in spaces.values():
        for name, params in space.landmarks.items():
            spec = space.decode(params)
            if name in ZOO:
                assert spec.arch_id == get_spec(name).arch_id, name
                seen += 1
    assert seen >= 7  # mobilenet_v2, efficientnet_b0 (twice), resnet18/34/50, convnext_tiny


def test_a_landmark_that_is_not_its_network_is_refused():
    text = SPACES["mobile"].read_text().replace("  mobilenet_v2:\n    act: relu6", "  mobilenet_v2:\n    act: silu")
    with pytest.raises(SpecError, match=r"landmarks.mobilenet_v2 decodes to a network that is not the zoo's "
                                        r"mobilenet_v2: stem.act: 'silu' != 'relu6'"):
        space_of(text)


# Liu et al. 2022, Table 10 GFLOPs (MACs); step 15's 4.46 is a misprint of the unchanged 4.15 (see the reference).
PAPER_GMACS = {0: 4.09, 1: 4.09, 2: 4.53, 3: 4.42, 4: 2.35, 5: 5.27, 6: 4.64, 7: 4.07, 8: 4.10, 9: 4.15, 10: 4.21,
               11: 4.29, 12: 4.15, 13: 4.15, 14: 4.15, 15: 4.15, 16: 4.49}


def test_every_step_of_the_convnext_ladder_is_a_feasible_point(spaces):
    space = spaces["resnet_convnext"]
    steps = {int(k.split("_")[2]): k for k in space.landmarks if k.startswith("convnext_ladder_")}
    steps[0], steps[16] = "resnet50", "convnext_tiny"
    assert sorted(steps) == list(range(17))
    for step, name in steps.items():
        spec = space.decode(space.landmarks[name])
        macs = complexity(spec).macs / 1e9
        assert abs(macs / PAPER_GMACS[step] - 1) < 0.03, (step, macs)
        assert space.violations(spec) == [], name


def test_the_ablation_ladder_rows_are_points_of_the_space(spaces):
    """Cross-check with archlab.ablation.ladder's own replay of the ladder: each row's spec IS a landmark of the
    space, field for field (no unread field such as layer scale on a bottleneck network). The `grn` side branch
    (ConvNeXt V2's GRN, beyond Liu et al.'s ladder) is the one row outside this space."""
    ablation = pytest.importorskip("archlab.ablation.ladder")
    rows = ablation.resolve_ladder(ablation.load_ladder(ROOT / "studies" / "convnext_ablation.yaml"))
    space = spaces["resnet_convnext"]
    landmark_ids = {space.decode(p).arch_id for p in space.landmarks.values()}
    paper_rows = [r for r in rows if r.row.name != "grn"]
    assert len(rows) == 18 and len(paper_rows) == 17
    for row in paper_rows:
        assert row.spec.arch_id in landmark_ids, row.index


# --- decoding, replay, determinism ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SPACES))
def test_samples_replay_and_round_trip(spaces, name):
    space = spaces[name]
    for params, spec in space.sample(20, seed=3, **PROXY):
        assert space.decode(params, **PROXY) == spec
        assert space.decode(json.loads(json.dumps(params)), **PROXY).arch_id == spec.arch_id
        assert type(spec).from_json(spec.to_json()) == spec
        assert space.violations(spec) == []
        assert (spec.img_size, spec.in_chans, spec.num_classes) == (32, 1, 10)


def test_sampling_is_deterministic_by_seed(spaces):
    space = spaces["mobile"]
    first = space.sample(10, seed=7)
    assert first == space.sample(10, seed=7)
    assert [s.arch_id for _, s in first] != [s.arch_id for _, s in space.sample(10, seed=8)]
    assert len({s.arch_id for _, s in first}) == 10


def test_sample_without_feasibility_returns_infeasible_points_and_violations_say_why(spaces):
    space = spaces["resnet_convnext"]
    points = space.sample(40, seed=0, feasible_only=False)
    broken = [space.violations(spec) for _, spec in points if space.violations(spec)]
    assert broken, "a third of this space is outside its MAC/param bounds"
    assert all(m.startswith(("macs ", "params ")) and "at 224 px, 3 channels, 1000 classes" in m
               for ms in broken for m in ms)


def test_decode_checks_params(spaces):
    space = spaces["mobile"]
    params = dict(MOBILENET_V2)
    with pytest.raises(SpecError, match=r"params.stage2.kernel_size must be one of \{3, 5, 7\}, got 4"):
        space.decode({**params, "stage2.kernel_size": 4})
    with pytest.raises(SpecError, match=r"params.stage2.depth must be an integer in \[0, 4\] step 1, got 2.5"):
        space.decode({**params, "stage2.depth": 2.5})
    with pytest.raises(SpecError, match=r"params.stage2.kernl_size is not a parameter of this space "
                                        r"\(did you mean 'stage2.kernel_size'\?\)"):
        space.decode({**params, "stage2.kernl_size": 3})
    missing = {k: v for k, v in params.items() if k != "stage3.width"}
    with pytest.raises(SpecError, match=r"params.stage3.width is missing: this point needs it"):
        space.decode(missing)
    # inactive parameters (a dropped stage's, a gate without SE) are ignored, as Optuna never asked for them
    spec = space.decode({**params, "stage1.se_gate": "hard_sigmoid"}, **IMAGENET)
    assert spec.arch_id == get_spec("mobilenet_v2").arch_id


# --- Optuna define-by-run ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0),
                                     optuna.samplers.NSGAIISampler(seed=0, population_size=4)])
def test_suggest_is_define_by_run_and_trial_params_replay(spaces, sampler):
    space = spaces["resnet_convnext"]
    specs = {}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial, **PROXY)
        specs[trial.number] = spec
        cost = complexity(spec)
        return float(cost.macs), float(cost.params)

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=12)
    for trial in study.trials:
        assert all("/" not in name for name in trial.params)
        assert space.decode(trial.params, **PROXY) == specs[trial.number]
        block = trial.params["block"]
        families = {name.split(".")[1] for name in trial.params if name.startswith("stage") and name.count(".") == 2}
        assert families <= {block}, trial.params
        if block != "convnext":
            assert "layer_scale_init" not in trial.params and "acts" not in trial.params
        assert "img_size" not in trial.params


def test_conditional_parameters_are_suggested_only_where_they_apply(spaces):
    space = spaces["mobile"]
    for params, spec in space.sample(60, seed=1):
        for i in range(2, 7):  # every stage after the second may be dropped
            if params[f"stage{i}.depth"] == 0:
                assert not any(k.startswith(f"stage{i}.") and k != f"stage{i}.depth" for k in params)
        for i in range(7):
            se = params.get(f"stage{i}.se_ratio")
            assert (f"stage{i}.se_gate" in params) == (se == 0.25)
        assert len(spec.stages) == 2 + sum(params[f"stage{i}.depth"] > 0 for i in range(2, 7))
    names = {d.name for d in space.dimensions}
    assert all("/" not in n for n in names)


def test_family_subsections_name_their_parameters(spaces):
    dims = {d.name: d for d in spaces["resnet_convnext"].dimensions}
    assert dims["stage2.bottleneck.expand_ratio"].choices == (0.25, 0.5, 4.0)
    assert dims["stage2.bottleneck.expand_ratio"].condition == "stage2.block = bottleneck"
    assert dims["stage2.convnext.kernel_size"].choices == (3, 5, 7, 9, 11)
    assert dims["stage2.kernel_size"].condition == "stage2.block in (plain, basic, bottleneck)"
    assert dims["layer_scale_init"].condition == "some stage is convnext"
    assert dims["acts"].condition == "block = convnext"


# --- overrides and scaling --------------------------------------------------------------------------------

RES_SPACE = """
img_size: [64, 96]
stem: {width: 16}
stages:
  - {block: basic, depth: [1, 2], width: [16, 24], stride: 2}
"""


def test_forced_img_size_replaces_the_resolution_dimension():
    space = space_of(RES_SPACE)
    sizes = {spec.img_size for _, spec in space.sample(20, seed=0)}
    assert sizes == {64, 96}
    forced = space.sample(10, seed=0, img_size=32, in_chans=1, num_classes=10)
    assert all("img_size" not in p and s.img_size == 32 and s.in_chans == 1 and s.num_classes == 10
               for p, s in forced)


def test_width_multiplier_equals_archlab_scaling(spaces):
    space = spaces["mobile"]
    for mult in (0.35, 0.5, 0.75):
        scaled = space.decode({**MOBILENET_V2, "scaling.width_mult": mult}, **IMAGENET)
        assert scaled == scale(get_spec("mobilenet_v2").replace(name=""), width=mult)


def test_compound_scaling_with_derived_gamma_equals_archlab_scaling(spaces):
    space = spaces["efficientnet_scaling"]
    b0 = get_spec("efficientnet_b0").replace(name="")
    for phi, alpha, beta in ((1.0, 1.2, 1.1), (2.5, 1.05, 1.2), (3.0, 1.3, 1.0)):
        gamma = math.sqrt(2.0 / (alpha * beta ** 2))
        spec = space.decode({"scaling.phi": phi, "scaling.alpha": alpha, "scaling.beta": beta})
        assert spec == scale(b0, width=beta ** phi, depth=alpha ** phi, resolution=gamma ** phi)
        # a forced proxy side keeps its size; depth and width still scale
        proxy = space.decode({"scaling.phi": phi, "scaling.alpha": alpha, "scaling.beta": beta}, **PROXY)
        assert proxy.img_size == 32
        assert [s.depth for s in proxy.stages] == [s.depth for s in spec.stages]


TOLERANCE_SPACE = """
base: efficientnet_b0
scaling:
  phi: [0, 1, 2]
  alpha: [1.1, 1.2, 1.3]
  beta: [1.0, 1.1, 1.2]
  gamma: [1.0, 1.15, 1.3]
  tolerance: 0.05
"""


def test_searched_alpha_beta_gamma_outside_the_tolerance_are_not_points():
    space = space_of(TOLERANCE_SPACE)
    with pytest.raises(InvalidPointError, match=r"alpha\*beta\^2\*gamma\^2 = 3.164 is not within 5% of 2"):
        space.decode({"scaling.phi": 1, "scaling.alpha": 1.3, "scaling.beta": 1.2, "scaling.gamma": 1.3})
    ok = [(a, b, g) for a, b, g in itertools.product((1.1, 1.2, 1.3), (1.0, 1.1, 1.2), (1.0, 1.15, 1.3))
          if abs(a * b * b * g * g / 2 - 1) <= 0.05]
    assert (1.2, 1.1, 1.15) in ok
    assert space.log10_size() == pytest.approx(math.log10(3 * len(ok)))
    for params, _ in space.sample(15, seed=0):
        combo = (params["scaling.alpha"], params["scaling.beta"], params["scaling.gamma"])
        assert combo in ok


def test_fixed_phi_scaling_is_scale_compound():
    from archlab.arch.scaling import scale_compound
    space = space_of("base: efficientnet_b0\nscaling: {phi: [0, 1, 2]}\n")  # alpha/beta/gamma default to the paper's
    assert space.decode({"scaling.phi": 2}) == scale_compound(get_spec("efficientnet_b0").replace(name=""), 2)


# --- size --------------------------------------------------------------------------------------------------

class _Every(_Chooser):
    """Enumerates every point of a small space depth-first (used to check log10_size)."""

    def __init__(self, path):
        self.path, self.taken, self.radices, self.params = path, [], [], {}

    def pick(self, dim):
        values = dim.values()
        i = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(i)
        self.radices.append(len(values))
        self.params[dim.name] = values[i]
        return values[i]

    def next_path(self):
        for j in range(len(self.taken) - 1, -1, -1):
            if self.taken[j] + 1 < self.radices[j]:
                return self.taken[:j] + [self.taken[j] + 1]
        return None


def _enumerate(space):
    path, points, archs = [], set(), set()
    while path is not None:
        chooser = _Every(path)
        try:
            archs.add(space._decode(chooser, {}).arch_id)
            points.add(tuple(sorted(chooser.params.items())))
        except InvalidPointError:
            pass
        path = chooser.next_path()
    return len(points), len(archs)


SMALL_SPACE = """
img_size: 32
tied:
  act: [relu, silu]
  fam: [inverted_residual, bottleneck, convnext]
  acts: {choices: [all, one], when: {fam: convnext}}
stem: {type: [conv, patchify], width: [8, 16], patchify: {kernel_size: 2, stride: 2, norm: [none, layernorm]}}
layer_scale_init: [0.0, 1.0e-6]
all_stages:
  block: $fam
  act: $act
  kernel_size: [3, 5]
  inverted_residual: {expand_ratio: [2, 4], se_ratio: [0, 0.25]}
  se_gate: {choices: [sigmoid, hard_sigmoid], when: {se_ratio: 0.25}}
  bottleneck: {expand_ratio: [0.5, 1]}
  convnext: {group_width: 1, acts: $acts}
stages:
  - {width: [8, 16], depth: [1, 2], stride: 1}
  - {width: 16, depth: {low: 0, high: 2}, stride: 2}
head: {conv_width: [null, 32]}
"""


def test_log10_size_counts_each_distinct_point_once():
    space = space_of(SMALL_SPACE)
    points, archs = _enumerate(space)
    assert points == archs  # in this space no two parameter assignments give the same network
    assert space.log10_size() == pytest.approx(math.log10(points), abs=1e-9)


def test_shipped_space_sizes(spaces):
    assert 15 < spaces["mobile"].log10_size() < 20
    assert 12 < spaces["resnet_convnext"].log10_size() < 16
    assert spaces["efficientnet_scaling"].log10_size() == pytest.approx(math.log10(13 * 7 * 5))


def test_a_continuous_range_has_infinite_size():
    space = space_of("stages: [{block: basic, depth: 1, width: 8}]\ndrop_path_rate: {low: 0.0, high: 0.3}\n")
    assert space.log10_size() == math.inf
    values = [spec.drop_path_rate for _, spec in space.sample(5, seed=0)]
    assert all(0.0 <= v <= 0.3 for v in values) and len(set(values)) == 5


# --- constraints -----------------------------------------------------------------------------------------------

def test_constraints_are_checked_analytically_and_sampled_points_meet_them(spaces):
    space = spaces["mobile"]
    big = get_spec("mobilenet_v2").replace(img_size=448)
    assert space.violations(big) == []  # bounds are stated at 224 px whatever the point's own size
    wide = scale(get_spec("efficientnet_b0"), width=1.6)
    cost = complexity(wide)
    assert cost.params > 7e6 and cost.macs > 600e6
    assert space.violations(wide) == [f"params {cost.params:,} > max 7,000,000 at 224 px, 3 channels, 1000 classes",
                                      f"macs {cost.macs:,} > max 600,000,000 at 224 px, 3 channels, 1000 classes"]
    for _, spec in space.sample(30, seed=5, **PROXY):
        at_224 = complexity(spec.replace(**IMAGENET))
        assert 20e6 <= at_224.macs <= 600e6 and at_224.params <= 7e6
        assert 0.3e6 <= complexity(spec).macs <= 20e6  # small enough for 32 px proxies on a CPU


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_invalid_combinations_raise_invalid_point_and_are_skipped_by_sampling():
    text = """
stages:
  - {block: bottleneck, depth: 1, width: [24, 32], stride: 1, expand_ratio: 1, group_width: [8, 16]}
"""
    space = space_of(text)
    with pytest.raises(InvalidPointError, match="group_width must divide the grouped conv's 24 channels, got 16"):
        space.decode({"stage0.width": 24, "stage0.group_width": 16})
    widths = {(p["stage0.width"], p["stage0.group_width"]) for p, _ in space.sample(20, seed=0)}
    assert (24, 16) not in widths and len(widths) == 3
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    outcomes = []

    def objective(trial):
        try:
            space.suggest(trial)
        except InvalidPointError:
            outcomes.append("invalid")
            raise optuna.TrialPruned() from None
        outcomes.append("ok")
        return 0.0

    study.optimize(objective, n_trials=4)
    assert sorted(outcomes) == ["invalid", "ok", "ok", "ok"]


def test_sample_gives_up_with_a_clear_error_when_nothing_is_feasible():
    space = space_of("img_size: 32\nstem: {type: identity}\nstages: [{block: basic, depth: [1, 2], width: [8, 16]}]\n"
                     "constraints: {macs: {max: 2M}}\n")  # feasible at 32 px
    with pytest.raises(ArchlabError, match=r"found only 0 of 3 feasible points in 100 random tries"):
        space.sample(3, seed=0, img_size=224, max_tries=100)  # not at 224 px


def test_a_bound_no_point_can_meet_is_an_error_at_load():
    text = ("img_size: 32\nstem: {type: identity}\n"
            "stages: [{block: basic, depth: [1, 2], width: [8, 16], kernel_size: [3, 5]}]\n")
    cheapest = complexity(space_of(text).decode({"stage0.depth": 1, "stage0.width": 8, "stage0.kernel_size": 3})).macs
    with pytest.raises(SpecError, match=rf"constraints.macs.max cannot be met: the cheapest point of the space has "
                                        rf"{cheapest:,} macs, got 1000"):
        space_of(text + "constraints: {macs: {max: 1000}}\n")
    with pytest.raises(SpecError, match=r"constraints.params.min cannot be met: the largest point of the space has "
                                        r"[\d,]+ params at 224 px, got 1000000000"):
        space_of(text + "constraints: {params: {min: 1G, at: {img_size: 224}}}\n")
    assert space_of(text + f"constraints: {{macs: {{max: {cheapest}}}}}\n").sample(1, seed=0)


def test_list_valued_choices_round_trip_through_optuna():
    space = space_of("img_size: 32\nstem: {type: identity}\nstages: [{block: basic, depth: 1, width: 8}]\n"
                     "head: {hidden: [[], [16], [32, 16]]}\n")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(space.suggest(trial))
        return 0.0

    study.optimize(objective, n_trials=20)
    for trial, spec in zip(study.trials, seen):
        assert trial.params["head.hidden"] in ("[]", "[16]", "[32, 16]")  # Optuna stores primitives only
        assert space.decode(trial.params) == spec
    assert {spec.head.hidden for spec in seen} == {(), (16,), (32, 16)}
    params, spec = space.sample(1, seed=0)[0]
    assert space.decode(params) == spec


def test_a_bound_at_an_input_the_point_cannot_take_is_a_violation():
    space = space_of("img_size: 64\nstem: {type: patchify, kernel_size: 4, stride: 4, norm: none, act: none}\n"
                     "stages:\n  - {block: convnext, depth: 1, width: 8, downsample: layer, stride: [1, 2]}\n"
                     "  - {block: convnext, depth: 1, width: 16, downsample: layer, stride: 2}\n"
                     "constraints: {macs: {max: 1G, at: {img_size: 8}}}\n")
    wide = space.decode({"stage0.stride": 1})
    narrow = space.decode({"stage0.stride": 2})
    assert space.violations(wide) == []
    [message] = space.violations(narrow)
    assert message.startswith("cannot be evaluated at 8 px: img_size is too small")
