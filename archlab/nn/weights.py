"""Weights in and out: torchvision and timm state dicts mapped onto archlab networks, checkpoint files read safely.

A zoo network and its torchvision or timm counterpart hold the same tensors in the same forward order, so the
key mapping is found by aligning the two modules' state-dict entries, both modules built on the meta device
(nothing allocated, nothing downloaded). Three layout differences are handled where the entries meet: a module's
own parameters are listed after its children (ConvNeXt's layer scale, which torchvision and timm keep on the block
and archlab as the branch's last layer), a Linear meets a 1x1 convolution or a flattening conv meets a Linear (a
reshape: both store the output dimension first), and the classifier may have any number of classes. The mapping
is checked on every pair's shape, and tests compare the OUTPUTS of both networks on the same input.

Checkpoint files: safetensors are read as they are; a pickle-based PyTorch file only with `trust_pickle=True`,
and then through `torch.load(weights_only=True)`, which refuses anything that is not tensors and plain containers.
"""
from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archlab.arch.spec import ArchSpec
from archlab.arch.zoo import ZOO, get_spec
from archlab.core.errors import ArchlabError, did_you_mean
from archlab.core.files import atomic_write

__all__ = [
    "SOURCES", "LoadedWeights", "WeightsMismatch", "check_fits", "convert", "counterpart_name", "counterpart_spec",
    "counterparts", "entries_of", "fit_to", "from_timm", "from_torchvision", "guess_network", "key_map",
    "load_checkpoint", "load_weights", "metadata_of", "randomize_", "reference_model", "save_weights", "to_timm",
    "to_torchvision",
]

SOURCES = ("torchvision", "timm")

# zoo name -> timm model of the same function (non-"tf_" variants: the tf_ ones pad asymmetrically, as TensorFlow)
_TIMM_NAMES: dict[str, str] = {
    **{n: n for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                      "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
                      "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
                      "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
                      "convnextv2_atto", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano",
                      "convnextv2_tiny", "convnextv2_small", "convnextv2_base", "convnextv2_large", "convnextv2_huge")},
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    "mobilenet_v2": "mobilenetv2_100", "mobilenet_v3_large": "mobilenetv3_large_100",
    "mobilenet_v3_small": "mobilenetv3_small_100",
}
# torchvision builder arguments that make its module the zoo's (GoogLeNet's auxiliary heads are training-only)
_TORCHVISION_KWARGS: dict[str, dict[str, object]] = {"googlenet": {"aux_logits": False, "init_weights": False}}
# spec changes that give the zoo network the counterpart's conventions where they are not torchvision's
_TIMM_SPEC_CHANGES: dict[str, dict[str, object]] = {
    n: {"bn_eps": 1e-5, "bn_momentum": 0.1}
    for n in ("mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7")}
_SHOW = 5  # keys listed in a mismatch message


class WeightsMismatch(ArchlabError):
    """A state dict that does not fit the network it was given to."""

    def __init__(self, message: str, *, problems: int = 0) -> None:
        super().__init__(message)
        self.problems = problems  # missing + unexpected + wrongly shaped entries


@dataclass(frozen=True)
class LoadedWeights:
    """An archlab state dict read from a file, with where it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str          # archlab, torchvision or timm
    path: str
    num_classes: int     # the classifier's outputs in the file

    def load_into(self, model: nn.Module) -> nn.Module:
        """Load the weights with strict=True and record their file and layout in the model's pretrained_cfg."""
        model.load_state_dict(self.state_dict, strict=True)
        cfg = getattr(model, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.update(file=self.path, source=self.source)
        return model


def counterpart_name(name: str, source: str) -> str | None:
    """The torchvision or timm model name of zoo network `name`, or None where it has none."""
    _check_source(source)
    if name not in ZOO:
        return None
    if source == "timm":
        import timm
        timm_name = _TIMM_NAMES.get(name)
        return timm_name if timm_name and timm.is_model(timm_name) else None
    import torchvision
    return name if name in torchvision.models.list_models() else None


def counterparts(source: str) -> list[str]:
    """Zoo names with a counterpart in `source`, in zoo order."""
    return [n for n in ZOO.names() if counterpart_name(n, source)]


def counterpart_spec(name: str, source: str = "torchvision", **changes: object) -> ArchSpec:
    """The zoo spec that computes what the `source` model computes (timm keeps PyTorch's BatchNorm defaults)."""
    spec = get_spec(name)
    extra = _TIMM_SPEC_CHANGES.get(name, {}) if source == "timm" else {}
    return spec.replace(**{**extra, **changes}) if extra or changes else spec


def from_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision `name` state dict as the archlab zoo network's (load with strict=True)."""
    return convert("torchvision", name, state_dict)


def from_timm(name: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm state dict of zoo network `name`'s counterpart as the archlab network's (strict=True)."""
    return convert("timm", name, state_dict)


def to_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An archlab zoo network's state dict as torchvision's `name` expects it."""
    return convert("torchvision", name, state_dict, reverse=True)


def to_timm(name: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An archlab zoo network's state dict as its timm counterpart expects it."""
    return convert("timm", name, state_dict, reverse=True)


def key_map(name: str, source: str) -> dict[str, str]:
    """The mapping `source` key -> archlab key for zoo network `name`."""
    ref, arch = _aligned(source, name)
    return {r: a for (r, _), (a, _) in zip(ref, arch)}


# --- alignment ---------------------------------------------------------------------------------------------

Entries = list[tuple[str, tuple[int, ...]]]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ArchlabError(f"unknown weights source {source!r}: must be one of {', '.join(SOURCES)}")


def entries_of(model: nn.Module) -> Entries:
    """(key, shape) of a module's state dict in forward order, a module's children before its own parameters."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    out: Entries = []

    def visit(module: nn.Module, prefix: str) -> None:
        children = list(module.named_children())
        order = _CHILD_ORDER.get(type(module).__name__)
        if order:
            children.sort(key=lambda item: order.index(item[0]) if item[0] in order else len(order))
        for child_name, child in children:
            visit(child, f"{prefix}{child_name}.")
        own = [n for n, _ in module.named_parameters(recurse=False)] + \
              [n for n, _ in module.named_buffers(recurse=False)]
        out.extend((prefix + n, shapes[prefix + n]) for n in own if prefix + n in shapes)

    visit(model, "")
    assert len(out) == len(shapes), "a state-dict entry outside the module tree"
    return out


# reference blocks whose children archlab holds in another order: torchvision's RegNet block registers its
# projection shortcut before its branch, archlab (as torchvision's ResNet) after
_CHILD_ORDER: dict[str, tuple[str, ...]] = {"ResBottleneckBlock": ("f", "proj", "activation")}


@contextlib.contextmanager
def _regnet_widths_on_cpu() -> Iterator[None]:
    """torchvision computes RegNet's widths with Tensor.tolist(), which the meta device cannot run: run that on CPU.

    The one reach into torchvision internals here (BlockParams.from_init_params); tests/nn/test_families_exact.py
    builds every RegNet through it.
    """
    from torchvision.models import regnet
    original = regnet.BlockParams.__dict__["from_init_params"]

    def on_cpu(cls: type, *args: object, **kwargs: object) -> object:
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original


def _reference_model(source: str, name: str) -> nn.Module:
    """The counterpart module, on the meta device."""
    model_name = counterpart_name(name, source)
    if model_name is None:
        have = counterparts(source)
        raise ArchlabError(f"{name!r} has no {source} counterpart; zoo networks that have one: "
                           + ", ".join(have) + did_you_mean(name, have, list_valid=False))
    with torch.device("meta"):
        if source == "timm":
            import timm
            return timm.create_model(model_name, pretrained=False)
        import torchvision
        with _regnet_widths_on_cpu():
            return torchvision.models.get_model(model_name, weights=None, **_TORCHVISION_KWARGS.get(name, {}))


@functools.lru_cache(maxsize=256)
def _aligned(source: str, name: str) -> tuple[Entries, Entries]:
    """The counterpart's and the archlab network's entries, pair by pair, checked on shape."""
    from archlab.nn.build import build_model
    ref = entries_of(_reference_model(source, name))
    with torch.device("meta"):
        arch = entries_of(build_model(counterpart_spec(name, source)))
    if len(ref) != len(arch):
        raise ArchlabError(f"no key mapping from {source} {name}: {len(ref)} entries against archlab's "
                           f"{len(arch)}")
    for (rk, rs), (ak, as_) in zip(ref, arch):
        if _numel(rs) != _numel(as_):
            raise ArchlabError(f"no key mapping from {source} {name}: {rk} {list(rs)} meets {ak} {list(as_)}")
    return ref, arch


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def convert(source: str, name: str, state_dict: Mapping[str, torch.Tensor], *,
             reverse: bool = False) -> dict[str, torch.Tensor]:
    _check_source(source)
    ref, arch = _aligned(source, name)
    have, want = (arch, ref) if reverse else (ref, arch)
    given = _strip_prefix(state_dict)
    check_fits(given, have, what=f"{'archlab' if reverse else source} {name}")
    out: dict[str, torch.Tensor] = {}
    for (src_key, _), (dst_key, dst_shape) in zip(have, want):
        tensor = given.get(src_key)
        if tensor is None:  # checkpoints saved before PyTorch 0.4.1 lack BatchNorm's step counter
            tensor = torch.tensor(0, dtype=torch.long)
        if tensor.dim() != len(dst_shape):  # Linear <-> 1x1 conv, flattening conv <-> Linear, layer scale
            tensor = tensor.reshape((tensor.shape[0], *dst_shape[1:]) if dst_shape else ())
        out[dst_key] = tensor
    return out


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DistributedDataParallel's `module.` prefix and torch.compile's `_orig_mod.`."""
    out = dict(state_dict)
    for prefix in ("module.", "_orig_mod."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def check_fits(state_dict: Mapping[str, torch.Tensor], entries: Entries, *, what: str) -> None:
    """Raise WeightsMismatch, listing keys and shapes, unless `state_dict` holds exactly `entries`.

    The classifier (the last two entries) may have any number of classes; BatchNorm step counters may be missing.
    """
    expected = dict(entries)
    classifier = {k for k, _ in entries[-2:]}
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = []
    for key, shape in expected.items():
        tensor = state_dict.get(key)
        if tensor is None or not isinstance(tensor, torch.Tensor):
            continue
        got = tuple(tensor.shape)
        if got != shape and not (key in classifier and got[1:] == shape[1:]):
            wrong.append(f"{key} {list(got)} (expected {list(shape)})")
    if missing or unexpected or wrong:
        raise WeightsMismatch(_mismatch_text(what, missing, unexpected, wrong, state_dict),
                              problems=len(missing) + len(unexpected) + len(wrong))


def _mismatch_text(what: str, missing: list[str], unexpected: list[str], wrong: list[str],
                   state_dict: Mapping[str, torch.Tensor]) -> str:
    parts = [f"the weights do not fit {what}:"]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" (and {len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more};")
    guess = guess_network(state_dict)
    parts.append(f"they look like {guess[1]} {guess[0]}'s weights" if guess else
                 "they match no zoo network's layout")
    return " ".join(parts)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every float parameter and running statistic from a seeded generator; for checking a mapping on outputs.

    Uniform with the variance of N(0, 1 / fan_in) for weights of 2+ dims (outputs stay O(1) however deep),
    scales and layer scales in [0.5, 1.5], biases and means in [-0.2, 0.2], running variances in [0.5, 2]: unlike
    a fresh initialisation, BatchNorm's statistics and eps then change the outputs, so they are checked too.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            if key.endswith("running_var"):
                t.uniform_(0.5, 2.0, generator=gen)
            elif t.dim() >= 2:
                bound = (3.0 / t[0].numel()) ** 0.5
                t.uniform_(-bound, bound, generator=gen)
            elif key.endswith(("weight", "gamma")):
                t.uniform_(0.5, 1.5, generator=gen)
            else:
                t.uniform_(-0.2, 0.2, generator=gen)
    return model


def reference_model(name: str, source: str, seed: int = 0) -> nn.Module:
    """The torchvision or timm counterpart of zoo network `name` with seeded random weights, in eval mode."""
    model = _reference_model(source, name).to_empty(device="cpu")
    for module in model.modules():  # to_empty leaves BatchNorm's step counters undefined
        if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked is not None:
            module.num_batches_tracked.zero_()
    return randomize_(model, seed).eval()


# --- which network is this for? ---------------------------------------------------------------------------

_STATS = ("running_mean", "running_var", "num_batches_tracked")
_GUESS_CANDIDATES = 3  # zoo networks closest in parameter count whose layouts are compared key by key


@functools.lru_cache(maxsize=128)
def _signature(name: str, source: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """The (key, shape) pairs of a zoo network's state dict in `source`'s layout, statistics left out."""
    if source == "archlab":
        from archlab.nn.build import build_model
        with torch.device("meta"):
            entries = entries_of(build_model(get_spec(name)))
    else:
        entries = _aligned(source, name)[0]
    return frozenset(e for e in entries if not e[0].endswith(_STATS))


def guess_network(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str] | None:
    """(zoo name, source) whose layout holds most of `state_dict`'s keys and shapes, if one holds most.

    Only the few zoo networks closest in parameter count (known analytically, nothing built) are compared
    key by key, so a wrong checkpoint is named in about a second.
    """
    from archlab.nn.complexity import complexity
    given = {(k, tuple(v.shape)) for k, v in _strip_prefix(state_dict).items()
             if isinstance(v, torch.Tensor) and not k.endswith(_STATS)}
    if not given:
        return None
    params = sum(_numel(shape) for _, shape in given)
    names = sorted(ZOO.names(), key=lambda n: abs(complexity(get_spec(n)).params - params))[:_GUESS_CANDIDATES]
    best, best_score = None, 0.0
    for name in names:
        for source in ("archlab", *SOURCES):
            if source != "archlab" and not counterpart_name(name, source):
                continue
            sig = _signature(name, source)
            score = len(given & sig) / len(given | sig)  # Jaccard: a subset of a deeper network scores lower
            if score > best_score:
                best, best_score = (name, source), score
    return best if best_score >= 0.5 else None


# --- files -------------------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A flat {key: tensor} dict from a safetensors file or (with `trust_pickle`) a PyTorch checkpoint.

    Training checkpoints that wrap the weights (`state_dict`, `model`, `state_dict_ema`) are unwrapped.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        raise ArchlabError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ArchlabError(f"{path}: is not a regular file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if _is_safetensors(head, info.st_size):
        data: object = _read_safetensors(path)
    elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        if not trust_pickle:
            raise ArchlabError(f"{path}: is a pickle-based PyTorch checkpoint, which can run code when read; "
                               "pass --trust-pickle (trust_pickle=True) to read it with "
                               "torch.load(weights_only=True), or convert it to safetensors")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on a bad file
            raise ArchlabError(f"{path}: is not a readable PyTorch checkpoint "
                               f"({type(err).__name__}: {_first_line(err)})") from None
    else:
        raise ArchlabError(f"{path}: is neither a safetensors file nor a PyTorch checkpoint")
    return _tensors(data, path)


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON header."""
    if len(head) < 9:
        return False
    return head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises SafetensorError (not exported) on a truncated or corrupt file
        raise ArchlabError(f"{path}: is a corrupt or truncated safetensors file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no detail"


def _tensors(data: object, path: Path) -> dict[str, torch.Tensor]:
    for wrapper in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict) or not data:
        raise ArchlabError(f"{path}: holds no state dict (expected a mapping of names to tensors)")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ArchlabError(f"{path}: entries that are not tensors: {', '.join(bad[:_SHOW])}")
    # a diverged or damaged checkpoint: every output would be NaN, and the export check would only say "differs"
    bad = [k for k, v in data.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ArchlabError(f"{path}: tensor {bad[0]} holds NaN or infinite values"
                           + (f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else "")
                           + "; the weights must be finite numbers")
    return _strip_prefix(data)


def save_weights(model: nn.Module | Mapping[str, torch.Tensor], path: str | Path, *,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write a state dict as safetensors, atomically (a temporary name, then a rename)."""
    from safetensors.torch import save
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    # safetensors refuses tensors that share storage or are views; contiguous copies are what a file holds
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    meta = {"format": "archlab", **(metadata or {})}
    # bytes written by Python get the usual permissions (safetensors' own save_file creates the file 0600)
    return atomic_write(path, lambda tmp: tmp.write_bytes(save(state, metadata=meta)))


def load_weights(spec: ArchSpec, path: str | Path, *, trust_pickle: bool = False) -> LoadedWeights:
    """Read `path` (archlab, torchvision or timm layout) as a state dict for the network of `spec`.

    archlab's own layout is tried first; a torchvision or timm layout is mapped when `spec` is a zoo network
    (by its name). The classifier may have another number of classes than the spec (see `num_classes`). When no
    layout fits, the error of the layout closest to the file (fewest problems) is the one reported.
    """
    from archlab.nn.build import build_model
    raw = load_checkpoint(path, trust_pickle=trust_pickle)
    with torch.device("meta"):
        model = build_model(spec)
    mine = entries_of(model)
    floating = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    layouts = ["archlab"]
    if spec.name in ZOO:
        layouts += [s for s in SOURCES if counterpart_name(spec.name, s)]
    errors: list[WeightsMismatch] = []
    for layout in layouts:
        try:
            state = raw if layout == "archlab" else convert(layout, spec.name, raw)
            check_fits(state, mine, what=_label(spec))  # a mapped dict must fit this spec too (widths, classes)
        except WeightsMismatch as err:
            errors.append(err)
            continue
        # load_state_dict would cast an int8 (quantised) tensor to float silently: every output is then garbage
        whole = [k for k, _ in mine if k in floating and not state[k].is_floating_point()]
        if whole:
            raise ArchlabError(f"{path}: tensor {whole[0]} is {str(state[whole[0]].dtype).removeprefix('torch.')}, "
                               "not floating point (a quantised checkpoint?); archlab loads float weights")
        return LoadedWeights(state, layout, str(path), int(state[mine[-1][0]].shape[0]))
    best = min(errors, key=lambda e: e.problems)
    raise WeightsMismatch(f"{path}: {best}", problems=best.problems)


def fit_to(spec: ArchSpec, state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Adapt weights to `spec`'s input channels and classes, for fine-tuning; the adapted dict and what changed.

    The first conv is summed or repeated over input channels (timm's `adapt_input_conv`, so ImageNet weights
    start a 1-channel Fashion-MNIST network); a classifier for another number of classes is left out.
    """
    from timm.models import adapt_input_conv

    from archlab.nn.build import build_model
    with torch.device("meta"):
        entries = entries_of(build_model(spec))
    out, notes = dict(state_dict), []
    first = next((k for k, shape in entries if len(shape) == 4), None)
    if first in out and out[first].shape[1] != dict(entries)[first][1]:
        out[first] = adapt_input_conv(spec.in_chans, out[first])
        notes.append(f"{first} adapted from {state_dict[first].shape[1]} to {spec.in_chans} input channels")
    for key, shape in entries[-2:]:
        if key in out and tuple(out[key].shape) != shape:
            del out[key]
            notes.append(f"{key} left at its initialisation ({spec.num_classes} classes)")
    return out, notes


def _label(spec: ArchSpec) -> str:
    return f"{spec.name or 'the spec'} (arch_id {spec.arch_id})"


def metadata_of(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (archlab writes format, arch_id, source)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})

