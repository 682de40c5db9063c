"""Every zoo member equals torchvision's builder (timm's model for ConvNeXt V2) of the same name, to the
parameter, and its MACs."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import regnet as tv_regnet

from archlab.arch.zoo import get_spec, zoo_names
from archlab.nn.build import build_model
from archlab.nn.complexity import complexity
from archlab.nn.layers import count_params

TIMM_NAMES = [n for n in zoo_names() if n.startswith("convnextv2_")]
TORCHVISION_NAMES = [n for n in zoo_names() if n != "lenet5" and n not in TIMM_NAMES]
TV_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}}  # the evaluated network, no aux heads


def _tv_model(name: str) -> torch.nn.Module:
    # torchvision computes RegNet widths with Tensor.tolist(), which the meta device cannot run: that step on CPU
    original = tv_regnet.BlockParams.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    tv_regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        with torch.device("meta"):  # shapes only: no memory, no init time
            return getattr(torchvision.models, name)(**TV_KWARGS.get(name, {}))
    finally:
        tv_regnet.BlockParams.from_init_params = original


def _timm_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_zoo_params_equal_torchvision(name):
    spec = get_spec(name)
    with torch.device("meta"):
        ours = build_model(spec)
    expected = count_params(_tv_model(name))
    assert count_params(ours) == expected
    assert complexity(spec).params == expected


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_zoo_macs_match_torchvision_ops(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    ops = weights.meta["_ops"]  # GMACs at the weights' evaluation crop, which is not always 224 or img_size
    crop = weights.transforms.keywords["crop_size"]
    ours = complexity(get_spec(name, img_size=crop)).macs / 1e9
    # within 1%, or within the rounding of `_ops`'s three decimals (shufflenet_v2_x0_5: 0.04 for 0.0405)
    assert ours == pytest.approx(ops, rel=0.01, abs=0.0005)


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_convnextv2_params_and_macs_equal_timm(name):
    """ConvNeXt V2 has no torchvision builder: timm's convnextv2_* is the reference, MACs by FlopCounterMode."""
    spec = get_spec(name)
    model = _timm_model(name)
    with torch.device("meta"):
        ours = build_model(spec)
    assert count_params(ours) == complexity(spec).params == count_params(model)
    x = torch.empty(1, 3, 224, 224, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert complexity(spec).macs == pytest.approx(counter.get_total_flops() // 2, rel=0.01)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "googlenet",
                                  "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "regnet_x_400mf", "regnet_y_400mf"])
def test_zoo_macs_equal_torchvision_flop_counter(name):
    spec = get_spec(name)
    x = torch.empty(1, 3, spec.img_size, spec.img_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        _tv_model(name)(x)
    assert complexity(spec).macs == counter.get_total_flops() // 2


def test_lenet5_modern_reading_has_61706_parameters():
    spec = get_spec("lenet5")
    assert complexity(spec).params == 61_706
    assert count_params(build_model(spec)) == 61_706
    assert build_model(spec)(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_reference_table_figures():
    """The published figures in shared/reference/torchvision_complexity.md."""
    table = {"resnet18": (11_689_512, 1.814), "resnet50": (25_557_032, 4.089), "mobilenet_v2": (3_504_872, 0.301),
             "efficientnet_b0": (5_288_548, 0.386), "convnext_tiny": (28_589_128, 4.456),
             "vgg16": (138_357_544, 15.470)}
    for name, (params, gmacs) in table.items():
        cost = complexity(get_spec(name))
        assert cost.params == params
        assert cost.macs / 1e9 == pytest.approx(gmacs, rel=0.005)


def test_efficientnet_presets_use_released_resolutions():
    sides = {f"efficientnet_b{i}": s for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))}
    for name, side in sides.items():
        assert get_spec(name).img_size == side


def test_issue_figures_for_the_new_families():
    """The parameter counts issue 13 states (torchvision 0.29)."""
    table = {"googlenet": 6_624_904, "shufflenet_v2_x0_5": 1_366_792, "shufflenet_v2_x1_0": 2_278_604,
             "shufflenet_v2_x1_5": 3_503_624, "shufflenet_v2_x2_0": 7_393_996}
    for name, params in table.items():
        assert complexity(get_spec(name)).params == params
    assert complexity(get_spec("googlenet")).macs / 1e9 == pytest.approx(1.498, rel=0.01)
    assert get_spec("googlenet").bn_eps == 1e-3  # torchvision's BasicConv2d
    assert get_spec("googlenet").stages[2].branch3_kernel == 3  # torchvision's "5x5" branch is a 3x3


def test_regnet_zoo_is_the_generator_and_counts_fifteen():
    from archlab.arch.generators import regnet_stages
    from archlab.arch.zoo import REGNETS
    assert len(REGNETS) == 15 and all(n in zoo_names() for n in REGNETS)
    spec = get_spec("regnet_y_400mf")
    assert [(s.depth, s.width, s.group_width) for s in spec.stages] == [(1, 48, 8), (3, 104, 8), (6, 208, 8),
                                                                      (6, 440, 8)]
    assert all(s.se_ratio == 0.25 for s in spec.stages)
    assert regnet_stages(depth=22, w0=24, wa=24.48, wm=2.54, group_width=16)[0]["width"] == 32


def test_get_spec_unknown_name_suggests():
    from archlab.core.errors import ArchlabError
    with pytest.raises(ArchlabError, match="did you mean 'resnet50'"):
        get_spec("resnet05")


def test_grn_step_turns_convnext_tiny_into_convnextv2_tiny():
    from archlab.arch.steps import ABLATION_STEPS
    v2 = ABLATION_STEPS.get("grn")(get_spec("convnext_tiny"))
    want = get_spec("convnextv2_tiny")
    assert v2.replace(drop_path_rate=0.0, name=want.name) == want
    assert complexity(v2).params == 28_635_496  # timm convnextv2_tiny


@pytest.mark.parametrize("name", ["googlenet", "shufflenet_v2_x1_0", "convnextv2_tiny", "regnet_y_400mf"])
def test_width_scaling_keeps_new_families_valid(name):
    """Scaling asks the family for its width fields: an Inception stage rescales every branch."""
    from archlab.arch.families import inception_pool_width
    from archlab.arch.scaling import scale
    spec = scale(get_spec(name), width=0.25, depth=0.34)
    for stage in spec.stages:
        if stage.block == "inception":
            assert inception_pool_width(stage) > 0 and stage.branch1 % 8 == 0
    assert complexity(spec).params < complexity(get_spec(name)).params
