"""Weights in and out: torchvision/timm state dicts give the zoo network the SAME OUTPUTS; checkpoint files.

Nothing can be downloaded here, so both sides start from the same random weights: the counterpart module is
filled from a seeded generator (running statistics included, so BatchNorm eps and the mapping of every buffer
matter), its state dict is converted, loaded with strict=True, and both networks run the same input in eval mode.
"""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from archlab.arch.zoo import get_spec
from archlab.core.errors import ArchlabError
from archlab.nn import weights as W
from archlab.nn.build import build_model

TORCHVISION = W.counterparts("torchvision")
TIMM = W.counterparts("timm")
REL_TOL = 1e-5  # the goal: max |difference| / max |output| after conversion
# Outputs are compared for every counterpart up to 30M parameters and for AlexNet and the smallest VGGs; the
# larger ones (ResNet-152, RegNetY-128GF, ConvNeXt-L, ...) repeat a smaller member's layout at a cost of minutes
# on a 2-core runner, so here their mapping is checked key by key and shape by shape (test_mapping_of_large_networks)
# and bench/weights_exactness.py compares the outputs of all of them (the table in docs/export.md).
_OUTPUT_CAP = 30_000_000


def _params(name: str) -> int:
    from archlab.nn.complexity import complexity
    return complexity(get_spec(name)).params


def _tractable(names: list[str]) -> list[str]:
    return [n for n in names if _params(n) <= _OUTPUT_CAP or n in ("alexnet", "vgg11", "vgg11_bn")]


def _large(source: str) -> list[tuple[str, str]]:
    names = W.counterparts(source)
    small = set(_tractable(names))
    return [(source, n) for n in names if n not in small]


def smallest_size(name: str) -> int:
    """The smallest input side (of 32, 64, 96) the network takes: small inputs keep comparisons fast."""
    from archlab.core.errors import SpecError
    for size in (32, 64, 96):
        try:
            get_spec(name, img_size=size)
            return size
        except SpecError:
            continue
    return 224


def reference(source: str, name: str) -> torch.nn.Module:
    """The counterpart module with seeded random weights and running statistics, in eval mode."""
    return W.reference_model(name, source)


def archlab_model(spec, state) -> torch.nn.Module:
    with torch.device("meta"):
        model = build_model(spec)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def compare(source: str, name: str) -> float:
    """Max |archlab - counterpart| / max |counterpart| on one image, after converting random weights."""
    ref = reference(source, name)
    state = W.from_torchvision(name, ref.state_dict()) if source == "torchvision" else \
        W.from_timm(name, ref.state_dict())
    size = smallest_size(name)
    ours = archlab_model(W.counterpart_spec(name, source, img_size=size), state)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return max_rel_diff(ours(x), ref(x))


@pytest.mark.parametrize("name", _tractable(TORCHVISION))
def test_from_torchvision_same_outputs(name):
    assert compare("torchvision", name) <= REL_TOL


@pytest.mark.parametrize("name", _tractable(TIMM))
def test_from_timm_same_outputs(name):
    assert compare("timm", name) <= REL_TOL


@pytest.mark.parametrize("source,name", _large("torchvision") + _large("timm"))
def test_mapping_of_large_networks(source, name):
    """The counterpart's keys map one to one onto the archlab network's, every shape as the network's own."""
    ref, arch = W._aligned(source, name)
    with torch.device("meta"):
        converted = W.convert(source, name, {k: torch.empty(shape) for k, shape in ref})
    assert [(k, tuple(v.shape)) for k, v in converted.items()] == arch


def test_counterparts_cover_the_zoo():
    # every zoo network but LeNet-5 (a modern reading of a 1998 net) has a torchvision counterpart
    assert set(get_spec_names()) - set(TORCHVISION) <= {"lenet5"} | _new_families_without_counterpart()
    assert {"resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"} <= set(TIMM)


def get_spec_names() -> list[str]:
    from archlab.arch.zoo import zoo_names
    return zoo_names()


def _new_families_without_counterpart() -> set[str]:
    import torchvision
    return {n for n in get_spec_names() if n not in torchvision.models.list_models()}


def test_batchnorm_settings_reach_the_modules_and_matter():
    """MobileNetV3's torchvision BatchNorm (eps 1e-3, momentum 0.01); with PyTorch's defaults outputs differ."""
    model = build_model(get_spec("mobilenet_v3_small", img_size=64))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    ref = reference("torchvision", "mobilenet_v3_small")
    state = W.from_torchvision("mobilenet_v3_small", ref.state_dict())
    wrong = archlab_model(get_spec("mobilenet_v3_small", img_size=64, bn_eps=1e-5), state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_rel_diff(wrong(x), ref(x)) > 1e-4


def test_arch_id_unchanged_by_default_batchnorm_fields():
    assert get_spec("resnet50").arch_id == "0906cb16f5c85e71"
    assert get_spec("resnet50", bn_eps=1e-3).arch_id != "0906cb16f5c85e71"


def test_round_trip_to_torchvision_and_timm():
    ref = reference("torchvision", "resnet18")
    ours = W.from_torchvision("resnet18", ref.state_dict())
    back = W.to_torchvision("resnet18", ours)
    assert back.keys() == ref.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ref.state_dict().items())
    timm_ref = reference("timm", "convnext_tiny")
    back = W.to_timm("convnext_tiny", W.from_timm("convnext_tiny", timm_ref.state_dict()))
    assert all(torch.equal(back[k], v) for k, v in timm_ref.state_dict().items())


def test_key_map_names_the_layers():
    mapping = W.key_map("resnet50", "torchvision")
    assert mapping["conv1.weight"] == "stem.0.0.weight"
    assert mapping["layer1.0.downsample.0.weight"] == "stages.0.blocks.0.shortcut.0.weight"
    assert mapping["fc.weight"] == "fc.weight"
    cx = W.key_map("convnext_tiny", "torchvision")
    assert cx["features.1.0.layer_scale"] == "stages.0.blocks.0.branch.3.gamma"


def test_other_number_of_classes_and_old_checkpoints():
    ref = reference("torchvision", "resnet18")
    state = ref.state_dict()
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:10], state["fc.bias"][:10]
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 files
    ours = W.from_torchvision("resnet18", state)
    archlab_model(get_spec("resnet18", num_classes=10), ours)


def test_wrong_network_lists_keys_and_guesses(tmp_path):
    ref = reference("torchvision", "resnet50")
    with pytest.raises(W.WeightsMismatch) as err:
        W.from_torchvision("resnet18", ref.state_dict())
    text = str(err.value)
    assert "missing keys" in text or "unexpected keys" in text
    assert "wrong shapes" in text and "torchvision resnet50" in text
    path = tmp_path / "r50.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    with pytest.raises(W.WeightsMismatch, match="r50.safetensors.*torchvision resnet50"):
        W.load_weights(get_spec("resnet18"), path)


def test_load_weights_detects_the_layout(tmp_path):
    ref = reference("timm", "mobilenet_v3_small")  # timm's ResNets share torchvision's keys; its MobileNets do not
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    spec = W.counterpart_spec("mobilenet_v3_small", "timm", img_size=64)
    loaded = W.load_weights(spec, path)
    assert loaded.source == "timm" and loaded.num_classes == 1000
    built = loaded.load_into(build_model(spec))
    assert (built.pretrained_cfg["file"], built.pretrained_cfg["source"]) == (str(path), "timm")
    model = archlab_model(spec, loaded.state_dict)
    out = W.save_weights(model, tmp_path / "mine.safetensors", metadata={"arch_id": spec.arch_id})
    again = W.load_weights(spec, out)
    assert again.source == "archlab"
    assert all(torch.equal(again.state_dict[k], v) for k, v in model.state_dict().items())
    assert W.metadata_of(out)["format"] == "archlab"


def test_pickle_refused_unless_trusted(tmp_path):
    model = build_model(get_spec("resnet18", img_size=64))
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    with pytest.raises(ArchlabError, match="pickle.*--trust-pickle"):
        W.load_checkpoint(path)
    loaded = W.load_checkpoint(path, trust_pickle=True)  # unwrapped and de-prefixed
    assert loaded.keys() == model.state_dict().keys()


def test_pickle_with_code_refused_even_when_trusted(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, path)
    with pytest.raises(ArchlabError, match="not a readable PyTorch checkpoint"):
        W.load_checkpoint(path, trust_pickle=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "directory"])
def test_corrupt_files(tmp_path, damage):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(100)}, str(path))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-50])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(ArchlabError, match="w.safetensors"):
        W.load_checkpoint(path)


def test_quantised_and_non_finite_weights_are_refused(tmp_path):
    spec = get_spec("lenet5")
    state = build_model(spec).state_dict()
    path = tmp_path / "w.safetensors"
    save_file({k: v.to(torch.int8) for k, v in state.items()}, str(path))
    with pytest.raises(ArchlabError, match=r"w.safetensors: tensor stages.0.blocks.0.conv.0.weight is int8, not "
                                           r"floating point \(a quantised checkpoint\?\)"):
        W.load_weights(spec, path)   # load_state_dict cast it silently: outputs of all zeros, exported as fine
    save_file({k: v.double() for k, v in state.items()}, str(path))
    assert W.load_weights(spec, path).source == "archlab"   # float64 is a float: cast on load, as before
    save_file({**state, "fc.bias": torch.full_like(state["fc.bias"], float("inf"))}, str(path))
    with pytest.raises(ArchlabError, match="tensor fc.bias holds NaN or infinite values"):
        W.load_weights(spec, path)


def test_no_counterpart():
    with pytest.raises(ArchlabError, match="no torchvision counterpart"):
        W.from_torchvision("lenet5", {})
