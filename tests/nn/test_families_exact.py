"""The new families compute what torchvision's and timm's networks compute: random init on both sides, the
reference's weights copied by the key mapping (archlab.nn.weights), OUTPUTS compared in eval mode."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from archlab.nn import weights
from archlab.nn.build import build_model

# small members of each new family (the larger ones differ only in widths and depths, pinned by tests/arch)
CASES = [("googlenet", "torchvision"), ("shufflenet_v2_x0_5", "torchvision"), ("regnet_x_400mf", "torchvision"),
         ("regnet_y_400mf", "torchvision"), ("convnextv2_atto", "timm")]


def _reference(name: str, source: str) -> torch.nn.Module:
    if source == "timm":
        return timm.create_model(name, pretrained=False)
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _randomise_norms(model: torch.nn.Module) -> None:
    """Running statistics and affine terms away from their initial values, GRN's zero gamma/beta too, so a
    wrongly mapped norm or a skipped GRN changes the output."""
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.num_features, generator=gen) - 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.LayerNorm) or type(module).__name__ in (
                "LayerNorm2d", "GlobalResponseNorm"):
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=gen) - 0.5)


@pytest.mark.parametrize(("name", "source"), CASES)
def test_outputs_equal_reference(name, source):
    torch.manual_seed(0)
    ref = _reference(name, source)
    _randomise_norms(ref)
    ours = build_model(weights.counterpart_spec(name, source))
    convert = weights.from_timm if source == "timm" else weights.from_torchvision
    ours.load_state_dict(convert(name, ref.state_dict()), strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want, got = ref.eval()(x), ours.eval()(x)
    assert want.abs().max() > 1e-3  # a real signal, not two zero outputs
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_grn_starts_as_the_identity_and_acts_once_trained():
    """GRN's gamma and beta start at zero (timm's init), one GRN per block; a non-zero gamma changes the output."""
    from archlab.arch.zoo import get_spec
    spec = get_spec("convnextv2_atto", num_classes=10, img_size=32)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    grns = [m for m in model.modules() if type(m).__name__ == "GlobalResponseNorm"]
    assert len(grns) == spec.num_blocks
    assert all(not m.weight.any() and not m.bias.any() for m in grns)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        grns[0].weight.fill_(1.0)
        assert not torch.allclose(model(x), before)


NEW_NAMES = [n for n in __import__("archlab.arch.zoo", fromlist=["zoo_names"]).zoo_names()
             if n.startswith(("googlenet", "shufflenet_v2", "regnet_", "convnextv2_"))]


@pytest.mark.parametrize("name", NEW_NAMES)
def test_new_zoo_network_costs_what_it_builds(name):
    """Analytic params equal the module's, analytic MACs equal FlopCounterMode's, forward and backward run
    (on the meta device: shapes only, so regnet_y_128gf costs no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    from archlab.arch.zoo import get_spec
    from archlab.nn.complexity import complexity
    from archlab.nn.layers import count_params
    spec = get_spec(name, img_size=64, num_classes=10)
    cost = complexity(spec)
    with torch.device("meta"):
        model = build_model(spec)
        x = torch.empty(2, 3, 64, 64, requires_grad=True)
        assert count_params(model) == cost.params
        with FlopCounterMode(display=False) as counter:
            model.eval()(x[:1])
        assert counter.get_total_flops() // 2 == cost.macs
        out = model.train()(x)
        assert out.shape == (2, 10)
        out.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("name", ["googlenet", "shufflenet_v2_x0_5", "regnet_y_400mf", "convnextv2_atto"])
def test_new_family_trains_a_step_on_cpu(name):
    from archlab.arch.zoo import get_spec
    torch.manual_seed(0)
    model = build_model(get_spec(name, img_size=32, num_classes=10))
    x = torch.randn(4, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(4))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(loss)


def test_googlenet_aux_heads_are_torchvisions_when_asked_for():
    """head.aux: torchvision's googlenet(aux_logits=True): same parameters (13,004,888) and, in training mode
    (dropout off, batch statistics), the same main and auxiliary logits; off by default and never in eval."""
    from dataclasses import replace

    from archlab.arch.zoo import get_spec
    from archlab.nn.complexity import complexity
    from archlab.nn.layers import count_params
    plain = get_spec("googlenet", num_classes=10)
    spec = replace(plain, head=replace(plain.head, aux=(4, 7)))
    assert complexity(plain).params == complexity(get_spec("googlenet", num_classes=10)).params  # off by default
    torch.manual_seed(0)
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, num_classes=10)
    ours = build_model(spec)
    assert count_params(ours) == complexity(spec).params == count_params(ref)
    assert complexity(replace(spec, num_classes=1000)).params == 13_004_888
    assert complexity(spec).macs == complexity(plain).macs  # the aux heads do not run in eval mode
    ref_entries, our_entries = weights.entries_of(ref), weights.entries_of(ours)
    state = ref.state_dict()
    ours.load_state_dict({ok: state[rk].reshape(shape) for (rk, _), (ok, shape) in zip(ref_entries, our_entries)})
    for model in (ref, ours):
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = ref(x)
        got = ours(x)
    torch.testing.assert_close(got, want.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.aux_logits[0], want.aux_logits1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.aux_logits[1], want.aux_logits2, rtol=1e-4, atol=1e-5)
    ours.eval()
    with torch.no_grad():
        ours(x)
    assert ours.aux_logits == []
