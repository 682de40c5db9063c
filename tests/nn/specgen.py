"""A seeded generator of random valid ArchSpecs over every stem, family and downsampling style."""
from __future__ import annotations

import random

from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
from archlab.core.errors import SpecError

FAMILIES = ("plain", "basic", "bottleneck", "inverted_residual", "convnext", "inception", "shuffle")


def random_stage(rng: random.Random, block: str, width: int, stride: int) -> StageSpec:
    """One random stage of `block` with a width compatible with grouped convs."""
    kw: dict = dict(block=block, depth=rng.randint(1, 3), width=width, stride=stride,
                    kernel_size=rng.choice((1, 3, 5, 7)), act=rng.choice(("relu", "relu6", "silu", "hardswish",
                                                                            "gelu")),
                    norm=rng.choice(("batchnorm", "batchnorm", "layernorm", "none")))
    if block == "plain":
        kw["downsample"] = rng.choice(("stride", "pool", "pool_overlap", "pool_ceil", "pool_overlap_ceil"))
        kw["bias"] = rng.choice((None, True, False))
    elif block == "bottleneck":
        kw["expand_ratio"] = rng.choice((0.25, 0.5, 1.0, 4.0))
        kw["group_width"] = rng.choice((None, 1, 4))
        kw["se_ratio"] = rng.choice((0.0, 0.25))
        kw["downsample"] = rng.choice(("stride", "layer"))
    elif block == "inverted_residual":
        kw["expand_ratio"] = rng.choice((1.0, 3.0, 4.5, 6.0))
        kw["se_ratio"] = rng.choice((0.0, 0.25))
        kw["se_gate"] = rng.choice(("sigmoid", "hard_sigmoid"))
        kw["se_base"] = rng.choice(("in", "mid"))
        kw["se_act"] = rng.choice((None, "relu"))
    elif block == "convnext":
        kw["expand_ratio"] = rng.choice((2.0, 4.0))
        kw["acts"] = rng.choice(("all", "one"))
        kw["norms"] = rng.choice(("all", "one"))
        kw["grn"] = rng.choice((False, True))
        kw["downsample"] = rng.choice(("stride", "layer"))
    elif block == "inception":
        kw["kernel_size"] = rng.choice((3, 5))
        kw.update(branch1=2, branch2_reduce=rng.randint(1, 4), branch2=2, branch3_reduce=rng.randint(1, 4),
                  branch3=2, branch3_kernel=rng.choice((None, 3, 5)))
        kw["downsample"] = rng.choice(("stride", "pool_ceil", "pool_overlap_ceil"))
    elif block == "shuffle":
        kw["split_ratio"] = rng.choice((0.5, 0.25))
    else:
        kw["downsample"] = rng.choice(("stride", "layer"))
    return StageSpec(**kw)


def random_spec(seed: int) -> ArchSpec:
    """A random valid spec for a 32-64 px input (retries until the spec validates)."""
    rng = random.Random(seed)
    for _ in range(100):
        stem_type = rng.choice(("conv", "deep", "patchify", "identity"))
        k = rng.choice((2, 4)) if stem_type == "patchify" else rng.choice((3, 5, 7))
        stem = StemSpec(type=stem_type, width=8 * rng.randint(1, 4), kernel_size=k,
                        stride=k if stem_type == "patchify" else rng.choice((1, 2)),
                        pool=rng.choice(("none", "max", "max_ceil")) if stem_type in ("conv", "deep") else "none",
                        norm=rng.choice(("batchnorm", "layernorm", "none")),
                        act=rng.choice(("relu", "silu", "none")))
        stages = tuple(random_stage(rng, rng.choice(FAMILIES), 8 * rng.randint(1, 6), rng.choice((1, 2)))
                       for _ in range(rng.randint(1, 4)))
        head = HeadSpec(conv_width=rng.choice((None, 64)), pool=rng.choice(("avg", "max")),
                        pool_size=rng.choice((1, 1, 2)), norm=rng.choice(("none", "layernorm")),
                        hidden=rng.choice(((), (32,), (48, 24))), act=rng.choice(("relu", "hardswish")),
                        dropout=rng.choice((0.0, 0.2)))
        try:
            return ArchSpec(stem=stem, stages=stages, head=head, img_size=rng.choice((32, 48, 64)),
                            in_chans=rng.choice((1, 3)), num_classes=rng.choice((10, 100)),
                            drop_path_rate=rng.choice((0.0, 0.1)), layer_scale_init=rng.choice((0.0, 1e-6)))
        except SpecError:
            continue
    raise AssertionError("no valid random spec in 100 tries")
