"""Zero-cost proxies: a score of an untrained network from one or two minibatches; higher = predicted better.

Each proxy is a function (model, ProxyData) -> float registered in PROXIES. The sign convention is the same
for every proxy: a higher score predicts a higher trained accuracy. Two published scores carry their flip in
their definition and are kept as published: `jacov` is minus a spectral penalty (Mellor et al. 2021, v1) and
`az_trainability` is minus a distance of a spectral norm from 1 (Lee & Ham 2024). `params` and `macs` count
capacity (more is predicted better, the usual baselines).

A proxy never changes the network it is given: it works on a deep copy (SynFlow makes weights non-negative,
a train-mode forward updates BatchNorm's running statistics, gradients accumulate), and every random draw
(dropout, stochastic depth, random probes) comes from a torch RNG seeded with `data.seed` inside a forked RNG
state, so a proxy is deterministic for a seed and leaves the global RNG as it found it. BatchNorm is handled as
each paper does: batch statistics (train mode) for the data-driven scores, removed for SynFlow.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archlab.core.errors import ArchlabError
from archlab.core.registry import Registry

__all__ = ["PROXIES", "ProxyData", "ProxyFn", "as_proxy_data", "feature_units"]

ProxyFn = Callable[[nn.Module, "ProxyData"], float]
PROXIES: Registry[ProxyFn] = Registry("proxy")

# The layers whose weights the gradient-based scores sum over: the prunable layers of Abdelfattah et al.
_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
# Piecewise-"active" units whose sign pattern NWOT reads (gates such as Sigmoid/Hardsigmoid are not units).
_UNITS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Hardswish,
          nn.Mish, nn.Tanh)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass(frozen=True, eq=False)
class ProxyData:
    """Minibatches of normalised float inputs (N x C x H x W) and int64 labels, and the seed of random draws."""

    inputs: tuple[torch.Tensor, ...]
    targets: tuple[torch.Tensor, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.inputs or len(self.inputs) != len(self.targets):
            raise ArchlabError(f"proxy data need one or more minibatches with labels, got {len(self.inputs)} "
                               f"input and {len(self.targets)} label batches")
        for x, y in zip(self.inputs, self.targets):
            if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(x) < 2:
                raise ArchlabError(f"a proxy minibatch must be N x C x H x W inputs with N >= 2 labels, got inputs "
                                   f"{tuple(x.shape)} and labels {tuple(y.shape)}")

    @property
    def shape(self) -> tuple[int, ...]:
        """One input's shape, C x H x W."""
        return tuple(self.inputs[0].shape[1:])

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches as (inputs, labels); a single one is split in two halves (ZiCo needs two)."""
        if len(self.inputs) >= 2:
            return list(zip(self.inputs, self.targets))
        x, y = self.inputs[0], self.targets[0]
        half = len(x) // 2
        return [(x[:half], y[:half]), (x[half:], y[half:])]


def as_proxy_data(data: ProxyData | tuple | list, seed: int = 0) -> ProxyData:
    """`data` as ProxyData: kept as is, or one (inputs, labels) minibatch, or a list of such minibatches."""
    if isinstance(data, ProxyData):
        return data
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        data = [data]
    if isinstance(data, list | tuple) and all(isinstance(b, tuple | list) and len(b) == 2 for b in data):
        return ProxyData(tuple(b[0] for b in data), tuple(b[1] for b in data), seed=seed)
    raise ArchlabError(f"proxy data must be ProxyData, an (inputs, labels) minibatch or a list of them, got "
                       f"{type(data).__name__}")


def _proxy(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Register `fn` as proxy `name`, run with grad enabled under a forked RNG seeded with `data.seed`."""
    def add(fn: ProxyFn) -> ProxyFn:
        @functools.wraps(fn)
        def run(model: nn.Module, data: ProxyData) -> float:
            data = as_proxy_data(data)
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                torch.manual_seed(data.seed)
                return float(fn(model, data))
        PROXIES.register(name)(run)
        return run
    return add


def _copy(model: nn.Module, *, train: bool = True) -> nn.Module:
    """A deep copy of `model` with no gradients, in train (batch statistics) or eval mode, channels-last.

    Channels-last only changes the memory layout: on CPU it runs depthwise convolutions' backward pass about
    twice as fast, which keeps every proxy well inside its time budget.
    """
    net = copy.deepcopy(model).to(memory_format=torch.channels_last)
    net.zero_grad(set_to_none=True)
    for p in net.parameters():
        p.requires_grad_(True)
    return net.train(train)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _weight_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHT_LAYERS)]


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net(_nhwc(x))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x):
        raise ArchlabError(f"a proxy needs a classifier returning N x classes logits, got "
                           f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


@contextmanager
def _hooks(modules: list[nn.Module], hook: Callable, *, pre: bool = False) -> Iterator[None]:
    handles = [m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# --- capacity baselines -------------------------------------------------------------------------------------

@_proxy("params")
def params(model: nn.Module, data: ProxyData) -> float:
    """Number of parameters: the classic capacity baseline (more predicted better); data are not read."""
    return sum(p.numel() for p in model.parameters())


@_proxy("macs")
def macs(model: nn.Module, data: ProxyData) -> float:
    """Multiply-accumulates of one input: analytic for an archlab network at its own input, else counted.

    The count for other modules is torch.utils.flop_counter's FLOPs / 2 on one input in eval mode.
    """
    spec = getattr(model, "spec", None)
    if spec is not None and (spec.in_chans, spec.img_size, spec.img_size) == data.shape:
        from archlab.nn.complexity import complexity
        return complexity(spec).macs
    from torch.utils.flop_counter import FlopCounterMode
    net = _copy(model, train=False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(data.inputs[0][:1])
    return counter.get_total_flops() / 2


# --- gradient-based saliency (pruning at initialisation) ----------------------------------------------------

def _remove_batchnorm(net: nn.Module) -> None:
    """Replace every BatchNorm by an identity, in place."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, _BATCHNORMS):
                setattr(module, name, nn.Identity())


@_proxy("synflow")
def synflow(model: nn.Module, data: ProxyData) -> float:
    """SynFlow (Tanaka et al., NeurIPS 2020): sum over conv/linear weights of |theta * dR/dtheta|, R = 1'f(1).

    As Abdelfattah et al. (ICLR 2021) compute it: a float64 copy whose parameters are all made non-negative,
    BatchNorm removed (their "bn=False"; batch statistics of one all-ones input are meaningless), eval mode so
    dropout and stochastic depth do not cut paths, and one all-ones input. Data-free: the minibatch only gives
    the input shape.
    """
    net = _copy(model, train=False)
    _remove_batchnorm(net)
    net = net.double()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    out = _logits(net, torch.ones((1, *data.shape), dtype=torch.float64))
    out.sum().backward()
    return _saliency(net)


def _saliency(net: nn.Module) -> float:
    """Sum over conv/linear weights of |theta * grad|: the connection sensitivity SNIP and SynFlow share."""
    return sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in _weight_layers(net)
               if m.weight.grad is not None)


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """A train-mode copy of `model` after one cross-entropy backward pass on (x, y)."""
    net = _copy(model)
    F.cross_entropy(_logits(net, x), y).backward()
    return net


@_proxy("snip")
def snip(model: nn.Module, data: ProxyData) -> float:
    """SNIP (Lee et al., ICLR 2019): sum over conv/linear weights of |theta * dL/dtheta| on one labelled minibatch.

    Cross-entropy loss, BatchNorm on batch statistics (train mode), as Abdelfattah et al. (ICLR 2021) sum it.
    """
    net = _loss_grads(model, data.inputs[0], data.targets[0])
    return _saliency(net)


@_proxy("grad_norm")
def grad_norm(model: nn.Module, data: ProxyData) -> float:
    """grad_norm (Abdelfattah et al., ICLR 2021): sum over conv/linear layers of ||dL/dW||_2 on one minibatch.

    Cross-entropy loss, BatchNorm on batch statistics (train mode).
    """
    net = _loss_grads(model, data.inputs[0], data.targets[0])
    return sum(float(m.weight.grad.norm()) for m in _weight_layers(net) if m.weight.grad is not None)


# --- activation patterns and input Jacobians ----------------------------------------------------------------

@_proxy("jacov")
def jacov(model: nn.Module, data: ProxyData) -> float:
    """Jacobian covariance (Mellor et al. 2021, arXiv 2006.04647v1; Abdelfattah et al., ICLR 2021).

    J holds each input's gradient of the summed logits; with v the eigenvalues of corrcoef(J) over the
    minibatch and k = 1e-5, the score is -sum(log(v + k) + 1 / (v + k)): the published sign, highest when the
    inputs' Jacobians are uncorrelated. Train mode (batch statistics). A constant Jacobian row (a dead network)
    gets zero correlations, so its eigenvalue 0 costs 1/k rather than a NaN.
    """
    net = _copy(model)
    x = _nhwc(data.inputs[0]).clone().requires_grad_(True)  # never the caller's tensor
    out = _logits(net, x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(len(x), -1).double()
    corr = torch.nan_to_num(torch.corrcoef(jac), nan=0.0)
    v = torch.linalg.eigvalsh(corr).clamp_min(0.0)
    k = 1e-5
    return -float(torch.sum(torch.log(v + k) + 1.0 / (v + k)))


@_proxy("nwot")
def nwot(model: nn.Module, data: ProxyData) -> float:
    """NWOT, NAS without training (Mellor et al., ICML 2021): log|K_H| of the minibatch's activation codes.

    Each rectifier-like unit's input sign (> 0) over the minibatch gives binary codes c; K_H sums c c' +
    (1 - c)(1 - c)' over every such unit (the authors hook every ReLU; ReLU6, hardswish, SiLU, GELU and tanh are
    read the same way, by their input's sign). Train mode, as the authors run it. -inf for a network without
    such units (a linear network separates nothing).
    """
    net = _copy(model)
    x = data.inputs[0]
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64)

    def read(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes = (inputs[0].detach().reshape(len(x), -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)

    units = [m for m in net.modules() if isinstance(m, _UNITS)]
    if not units:
        return -math.inf
    with _hooks(units, read, pre=True), torch.no_grad():
        _logits(net, x)
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


# --- gradient statistics and feature correlations -----------------------------------------------------------

@_proxy("zico")
def zico(model: nn.Module, data: ProxyData) -> float:
    """ZiCo (Li et al., ICLR 2023): sum over layers of log(sum over weights of E|g| / std(g)) across minibatches.

    g is a conv/linear weight's cross-entropy gradient on each of two (or more) minibatches (one minibatch is
    split in two halves); weights whose gradient does not vary are left out, as are layers whose sum is zero.
    The std is the population std (ddof 0). Train mode (batch statistics).
    """
    net = _copy(model)
    layers = _weight_layers(net)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in data.pairs():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(_logits(net, x), y).backward()
        for store, layer in zip(grads, layers):
            if layer.weight.grad is not None:
                store.append(layer.weight.grad.detach().reshape(-1).double().clone())
    score = 0.0
    for store in grads:
        if len(store) < 2:
            continue
        g = torch.stack(store)
        std = g.std(dim=0, unbiased=False)
        varying = std > 0
        total = float((g.abs().mean(dim=0)[varying] / std[varying]).sum())
        if total > 0:
            score += math.log(total)
    return score


@_proxy("meco")
def meco(model: nn.Module, data: ProxyData) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): sum over layers of the minimum eigenvalue of the Pearson correlation
    of the layer's feature map.

    As the authors compute it: one random N(0, 1) input of the data's shape ("one random data"; drawn from
    `data.seed`), a train-mode forward with a hook on every module, and for each 4-D output the C x (H W)
    feature map's C x C channel correlation (NaN entries of constant channels set to 0), whose smallest
    eigenvalue is added. Where H W <= C the correlation has rank below C, so its smallest eigenvalue is exactly
    0 and is not computed. A network whose BatchNorm sees one value per channel (a 1 x 1 map) cannot run a
    single input in train mode; it gets two inputs and the first one's feature maps are read.
    """
    net = _copy(model)
    total = [0.0]

    def read(module: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            return
        c, positions = output.shape[1], output.shape[2] * output.shape[3]
        if positions <= c:
            return
        feat = output[0].detach().reshape(c, positions).double()
        corr = torch.nan_to_num(torch.corrcoef(feat), nan=0.0, posinf=0.0, neginf=0.0)
        total[0] += float(torch.linalg.eigvalsh(corr)[0])

    noise = torch.randn((2, *data.shape), generator=torch.Generator().manual_seed(data.seed))
    with _hooks([m for m in net.modules() if m is not net], read), torch.no_grad():
        try:
            _logits(net, noise[:1])
        except ValueError:  # "Expected more than 1 value per channel when training"
            total[0] = 0.0
            _logits(net, noise)
    return total[0]


# --- AZ-NAS's components (Lee & Ham, CVPR 2024); their rank aggregate is archlab.estimators.aggregate --------

def feature_units(net: nn.Module) -> list[nn.Module]:
    """The modules whose outputs AZ-NAS reads: an archlab network's stem, blocks and 1x1 conv head; else convs."""
    from archlab.nn.build import ArchNet
    if isinstance(net, ArchNet):
        units: list[nn.Module] = [net.stem]
        for stage in net.stages:
            units += list(stage.blocks)
        if not isinstance(net.conv_head, nn.Identity):
            units.append(net.conv_head)
        return units
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def _az_features(model: nn.Module, data: ProxyData) -> list[torch.Tensor]:
    """Outputs of every feature unit on the first minibatch: a train-mode copy re-initialised as AZ-NAS does
    (Kaiming-normal fan-in convs and linears, zero biases, unit norms)."""
    net = _copy(model)
    for m in net.modules():
        if isinstance(m, _WEIGHT_LAYERS):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (*_BATCHNORMS, nn.GroupNorm)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    feats: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            feats.append(output)

    with _hooks(feature_units(net), keep):
        _logits(net, data.inputs[0])
    if len(feats) < 2:
        raise ArchlabError(f"AZ-NAS's scores need at least two feature maps in the network, found {len(feats)}")
    return feats


def _isotropy(feat: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance over batch and positions."""
    x = feat.detach().permute(0, 2, 3, 1).reshape(-1, feat.shape[1]).double()
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.eigvalsh(x.T @ x / len(x)).clamp_min(0.0)
    if float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    return float(-(p * torch.log(p + 1e-8)).sum())


@_proxy("az_expressivity")
def az_expressivity(model: nn.Module, data: ProxyData) -> float:
    """AZ-NAS expressivity (Lee & Ham, CVPR 2024): sum over blocks of the isotropy of the output features.

    Isotropy is the entropy of the normalised eigenvalues of the channel covariance over all samples and
    positions (higher: features spread over more directions).
    """
    return sum(_isotropy(f) for f in _az_features(model, data))


@_proxy("az_progressivity")
def az_progressivity(model: nn.Module, data: ProxyData) -> float:
    """AZ-NAS progressivity (Lee & Ham, CVPR 2024): the smallest increase of isotropy from one block to the next."""
    scores = [_isotropy(f) for f in _az_features(model, data)]
    return min(b - a for a, b in zip(scores, scores[1:]))


@_proxy("az_trainability")
def az_trainability(model: nn.Module, data: ProxyData) -> float:
    """AZ-NAS trainability (Lee & Ham, CVPR 2024): mean over consecutive blocks of -(s + 1/s - 2).

    s estimates the spectral norm of a block's Jacobian: the largest singular value of the channel
    cross-correlation between a random Rademacher probe on the block's output and its back-propagated gradient
    at the block's input (the input's positions folded into channels by pixel-unshuffle where the block
    strides). The flip makes it highest (0) at s = 1, where signals neither explode nor vanish. A block that
    is an exact identity scores -inf, as published.
    """
    feats = _az_features(model, data)
    gen = torch.Generator().manual_seed(data.seed)
    scores = []
    for f_in, f_out in reversed(list(zip(feats, feats[1:]))):
        probe = torch.randint(0, 2, f_out.shape, generator=gen, dtype=f_out.dtype) * 2 - 1
        (g_in,) = torch.autograd.grad(f_out, f_in, probe, retain_graph=True, allow_unused=True)
        if g_in is None:
            continue
        if g_in.shape == probe.shape and torch.equal(g_in, probe):
            scores.append(-math.inf)
            continue
        stride = math.ceil(g_in.shape[2] / probe.shape[2])
        if stride > 1:
            pad_h, pad_w = probe.shape[2] * stride - g_in.shape[2], probe.shape[3] * stride - g_in.shape[3]
            g_in = F.pixel_unshuffle(F.pad(g_in, (0, max(pad_w, 0), 0, max(pad_h, 0))), stride)
        if g_in.shape[2:] != probe.shape[2:]:
            continue
        a = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1]).double()
        b = probe.permute(0, 2, 3, 1).reshape(-1, probe.shape[1]).double()
        s = float(torch.linalg.svdvals(a.T @ b / len(b)).max())
        scores.append(-s - 1.0 / (s + 1e-6) + 2.0)
    if not scores:
        raise ArchlabError("AZ-NAS trainability found no pair of consecutive feature maps to compare")
    return sum(scores) / len(scores)
