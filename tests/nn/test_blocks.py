"""Registry-parametrised block tests: every family x stride x kernel builds, runs, and costs what it builds."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archlab.arch.spec import ArchSpec, StageSpec, StemSpec
from archlab.nn.blocks import BLOCKS_REGISTRY
from archlab.nn.build import STEMS_REGISTRY, Stage, build_model
from archlab.nn.complexity import complexity
from archlab.nn.layers import Cost, count_params
from tests.nn.specgen import random_spec

FAMILY_KW = {"plain": {}, "basic": {}, "bottleneck": {"expand_ratio": 0.25, "group_width": 4},
             "inverted_residual": {"expand_ratio": 4.0, "se_ratio": 0.25},
             "convnext": {"expand_ratio": 4.0, "acts": "one", "norms": "one", "norm": "layernorm", "act": "gelu",
                          "grn": True},
             "inception": {"branch1": 4, "branch2_reduce": 4, "branch2": 6, "branch3_reduce": 2, "branch3": 2,
                           "branch3_kernel": 5},
             "shuffle": {"split_ratio": 0.5}}


@pytest.mark.parametrize("family", BLOCKS_REGISTRY.names())
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_block_forward_backward_shape_and_cost(family, stride, kernel_size):
    stage = StageSpec(block=family, depth=2, width=32, stride=stride, kernel_size=kernel_size, **FAMILY_KW[family])
    module = Stage(16, stage, [0.1, 0.1], layer_scale_init=1e-6 if family == "convnext" else 0.0)
    x = torch.randn(2, 16, 15, 15, requires_grad=True)
    out = module(x)
    side = stage.out_size(15)
    assert out.shape == (2, 32, side, side)
    out.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    cost = Cost(15)
    Stage.cost(cost, 16, stage, layer_scale_init=1e-6 if family == "convnext" else 0.0)
    assert cost.params == count_params(module)
    assert cost.size == side
    with FlopCounterMode(display=False) as counter:
        module.eval()(x[:1])  # MACs are per image
    assert cost.macs == counter.get_total_flops() // 2


@pytest.mark.parametrize("downsample", ["stride", "layer", "pool", "pool_overlap"])
def test_downsampling_styles(downsample):
    stage = StageSpec(block="plain" if "pool" in downsample else "basic", depth=2, width=24, stride=2,
                      downsample=downsample)
    module = Stage(8, stage, [0.0, 0.0], 0.0)
    out = module(torch.randn(1, 8, 16, 16))
    assert out.shape[-1] == stage.out_size(16)
    cost = Cost(16)
    Stage.cost(cost, 8, stage, 0.0)
    assert cost.params == count_params(module)


@pytest.mark.parametrize("stem_type", STEMS_REGISTRY.names())
def test_every_stem(stem_type):
    kernel = 4 if stem_type == "patchify" else 3
    stem = StemSpec(type=stem_type, width=16, kernel_size=kernel, stride=kernel if stem_type == "patchify" else 2,
                    pool="max" if stem_type in ("conv", "deep") else "none")
    spec = ArchSpec(stem=stem, stages=(StageSpec(block="basic", depth=1, width=16),), img_size=32, num_classes=5)
    model = build_model(spec)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert count_params(model) == complexity(spec).params
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == spec.stem.out_size(32)


@pytest.mark.parametrize("seed", range(50))
def test_random_specs_analytic_equals_built(seed):
    spec = random_spec(seed)
    model = build_model(spec).eval()
    cost = complexity(spec)
    assert count_params(model) == cost.params
    x = torch.randn(1, spec.in_chans, spec.img_size, spec.img_size)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    assert out.shape == (1, spec.num_classes)
    assert cost.macs == pytest.approx(counter.get_total_flops() / 2, rel=0.005)


def test_registry_rejects_duplicates_and_lists_names():
    with pytest.raises(ValueError, match="duplicate"):
        BLOCKS_REGISTRY.register("plain")(object)
    with pytest.raises(KeyError, match="valid: basic, bottleneck"):
        BLOCKS_REGISTRY.get("resnet")


@pytest.mark.parametrize("family", BLOCKS_REGISTRY.names())
def test_zero_init_last_starts_a_residual_block_as_its_shortcut(family):
    stage = StageSpec(block=family, depth=1, width=16, stride=1, **FAMILY_KW[family])
    block = BLOCKS_REGISTRY.get(family)(16, 16, 1, stage)
    x = torch.randn(2, 16, 9, 9)
    before = block.eval()(x)
    block.zero_init_last()
    after = block(x)
    last = block.branch[-1] if hasattr(block, "branch") else None
    ends_in_norm = isinstance(last, torch.nn.Sequential) and len(last) > 1
    if block.has_skip and ends_in_norm:
        shortcut = block.shortcut(x) if hasattr(block, "shortcut") else x
        post_act = getattr(block, "act", torch.nn.Identity())
        torch.testing.assert_close(after, post_act(shortcut))
        assert not torch.allclose(before, after)
    else:  # plain blocks have no skip; ConvNeXt's branch ends in layer scale, its own small start
        torch.testing.assert_close(after, before)


def test_zero_init_last_on_a_network():
    model = build_model(ArchSpec(stem=StemSpec(width=16, stride=1), stages=(
        StageSpec(block="inverted_residual", depth=3, width=16, expand_ratio=4.0),), img_size=16, num_classes=3))
    model.zero_init_last()
    zeroed = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.any()]
    assert len(zeroed) == 3  # the first block too: stride 1 and 16 -> 16 channels keep the skip
