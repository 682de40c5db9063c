"""Every zoo member equals torchvision's builder of the same name, to the parameter, and its MACs."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from archlab.arch.zoo import get_spec, zoo_names
from archlab.nn.build import build_model
from archlab.nn.complexity import complexity
from archlab.nn.layers import count_params

TORCHVISION_NAMES = [n for n in zoo_names() if n != "lenet5"]


def _tv_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):  # shapes only: no memory, no init time
        return getattr(torchvision.models, name)()


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
    assert ours == pytest.approx(ops, rel=0.01)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"])
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


def test_get_spec_unknown_name_suggests():
    from archlab.core.errors import ArchlabError
    with pytest.raises(ArchlabError, match="did you mean 'resnet50'"):
        get_spec("resnet05")
