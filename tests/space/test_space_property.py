"""Property: every sample of every shipped space builds, and the built network has exactly the analytic
parameter count and MACs (torch.utils.flop_counter) that the constraint check relies on."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from archlab.nn.build import build_model
from archlab.nn.complexity import complexity
from archlab.nn.layers import count_params
from archlab.space.search_space import load_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
# small inputs keep forward passes cheap; 1 channel and 10 classes as the default study's data
SIZES = {"mobile": 32, "resnet_convnext": 32, "efficientnet_scaling": 32}


def _check(space, seed: int, img_size: int | None, feasible_only: bool = True) -> None:
    [(params, spec)] = space.sample(1, seed=seed, img_size=img_size, in_chans=1, num_classes=10,
                                    feasible_only=feasible_only)
    assert space.decode(params, img_size=img_size, in_chans=1, num_classes=10) == spec
    model = build_model(spec).eval()
    cost = complexity(spec)
    assert count_params(model) == cost.params, params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.zeros(1, 1, spec.img_size, spec.img_size))
    assert out.shape == (1, 10)
    assert counter.get_total_flops() == 2 * cost.macs, params


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_every_sample_builds_with_its_analytic_complexity(path, seed):
    space = _space(path)
    _check(space, seed, SIZES.get(path.stem, 32))


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_compound_scaled_samples_at_their_own_resolution(seed):
    """Without a forced side, efficientnet_scaling points grow their resolution with gamma^phi."""
    _check(_space(ROOT / "search_spaces" / "efficientnet_scaling.yaml"), seed, None)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_mobile_samples_outside_the_constraints_also_build_exactly(seed):
    _check(_space(ROOT / "search_spaces" / "mobile.yaml"), seed, 32, feasible_only=False)


_LOADED: dict[Path, object] = {}


def _space(path: Path):
    if path not in _LOADED:
        _LOADED[path] = load_space(path)
    return _LOADED[path]
