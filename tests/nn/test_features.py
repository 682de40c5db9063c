"""timm's backbone interface on built networks, and the zoo registered with timm by `archlab.timm`."""
from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from torchvision.models.feature_extraction import create_feature_extractor

import archlab.timm  # noqa: F401  (registers archlab_<zoo name>)
from archlab.arch.zoo import get_spec, zoo_names
from archlab.nn.build import build_model

FAMILIES = ["resnet50", "convnext_tiny", "efficientnet_b0", "mobilenet_v3_small", "vgg11_bn", "alexnet",
            "regnet_y_400mf", "googlenet", "shufflenet_v2_x0_5"]


def _net(name: str, size: int = 64):
    return build_model(get_spec(name, img_size=size, num_classes=10)).eval()


@pytest.mark.parametrize("name", FAMILIES)
def test_feature_info_matches_intermediates(name):
    model = _net(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, feats = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
    assert len(feats) == len(model.feature_info)
    reductions = [f["reduction"] for f in model.feature_info]
    assert reductions == sorted(set(reductions))  # one level per resolution
    for info, feat in zip(model.feature_info, feats):
        assert feat.shape[1] == info["num_chs"]
        assert feat.shape[-1] == -(-64 // info["reduction"]) or name == "alexnet"  # AlexNet's valid pools
        assert dict(model.named_modules())[info["module"]] is not None


def test_timm_like_levels():
    # timm's own models give these levels; archlab's equivalents give the same
    assert [f["reduction"] for f in _net("resnet50").feature_info] == [2, 4, 8, 16, 32]
    assert [f["module"] for f in _net("resnet50").feature_info][0] == "stem.0"
    assert [f["num_chs"] for f in _net("convnext_tiny").feature_info] == [96, 192, 384, 768]
    effnet = timm.create_model("efficientnet_b0", pretrained=False)
    assert [f["num_chs"] for f in _net("efficientnet_b0").feature_info] == [f["num_chs"] for f in effnet.feature_info]


def test_indices_stop_early_and_nhwc():
    model = _net("convnext_tiny")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        all_feats = model.forward_intermediates(x, intermediates_only=True)
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        picked = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        early, feats = model.forward_intermediates(x, indices=[1], stop_early=True)
        nhwc = model.forward_intermediates(x, indices=[0], output_fmt="NHWC", intermediates_only=True)
    assert [torch.equal(a, b) for a, b in zip(last2, all_feats[2:])] == [True, True]
    assert torch.equal(picked[1], all_feats[3]) and torch.equal(early, all_feats[1]) and len(feats) == 1
    assert torch.equal(nhwc[0], all_feats[0].permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="levels"):
        model.forward_intermediates(x, indices=[7])


def test_prune_intermediate_layers():
    model = _net("resnet18")
    kept = model.prune_intermediate_layers([1, 2])
    assert kept == [1, 2] and len(model.stages) == 2 and model.num_classes == 0
    feats = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=kept, intermediates_only=True)
    assert [f.shape[1] for f in feats] == [64, 128]


def test_timm_create_model_features_only():
    assert {"archlab_resnet50", "archlab_convnext_tiny"} <= set(timm.list_models("archlab_*"))
    assert len(timm.list_models("archlab_*")) == len(zoo_names())
    backbone = timm.create_model("archlab_convnext_tiny", features_only=True, out_indices=(1, 2, 3))
    assert backbone.feature_info.channels() == [192, 384, 768]
    assert backbone.feature_info.reduction() == [8, 16, 32]
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1:] for o in outs] == [(192, 8, 8), (384, 4, 4), (768, 2, 2)]
    r50 = timm.create_model("archlab_resnet50", features_only=True)
    assert len(r50(torch.randn(1, 3, 64, 64))) == 5


def test_timm_kwargs_and_pretrained_file(tmp_path):
    from archlab.nn.weights import save_weights
    model = timm.create_model("archlab_resnet18", num_classes=10, in_chans=1, drop_rate=0.1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert model.pretrained_cfg["input_size"] == (1, 224, 224)
    path = save_weights(model, tmp_path / "r18.safetensors")
    again = timm.create_model("archlab_resnet18", num_classes=10, in_chans=1, pretrained=True,
                              pretrained_cfg_overlay={"file": str(path)})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(Exception, match="unsupported keyword"):
        timm.create_model("archlab_resnet18", bogus=1)


def test_layer_decay_and_grad_checkpointing():
    from timm.optim import create_optimizer_v2
    model = _net("convnext_tiny", 32).train()
    groups = create_optimizer_v2(model, "adamw", lr=1e-3, layer_decay=0.7).param_groups
    scales = sorted({g["lr_scale"] for g in groups})
    assert len(scales) > 5 and scales[-1] == 1.0  # deeper layers get larger learning rates
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    loss = model(x).sum()
    loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    torch.manual_seed(0)
    model(x).sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(plain, model.parameters()))


def test_torchvision_feature_extractor():
    model = _net("resnet18")
    fx = create_feature_extractor(model, return_nodes={"stages.1": "c3", "stages.3": "c5"})
    out = fx(torch.randn(1, 3, 64, 64))
    assert out["c3"].shape == (1, 128, 8, 8) and out["c5"].shape == (1, 512, 2, 2)


def test_import_archlab_stays_torch_free():
    code = "import sys, archlab; assert 'torch' not in sys.modules and 'timm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
