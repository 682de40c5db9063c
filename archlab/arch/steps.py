"""The ConvNeXt modernization steps as named, pure ArchSpec -> ArchSpec functions.

Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv 2201.03545), Section 2 and Tables 10-11: a
ResNet-50 is walked to ConvNeXt-T one change at a time. Each step here is a configuration of existing
block families (`bottleneck` for steps 0-6, `convnext` for 7-16), built with `dataclasses.replace`; nothing
global is mutated. Defaults are the ResNet-50 regime; keyword options give other regimes (Table 11's
ResNet-200 -> ConvNeXt-B) and user ladders. A step may also switch the training recipe (step 1 does only
that), which the ladder carries from row to row. Torch-free.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from archlab.arch.families import family, owner_of
from archlab.arch.spec import ArchSpec, StemSpec
from archlab.core.errors import SpecError
from archlab.core.registry import Registry

__all__ = ["ABLATION_STEPS", "AblationStep", "ablation_step"]


@dataclass(frozen=True, slots=True)
class AblationStep:
    """A registered ladder step: a pure spec transform with keyword options, and the recipe it switches to."""

    name: str
    fn: Callable[..., ArchSpec]
    recipe: str | None = None        # None: the previous row's recipe carries on
    doc: str = ""

    def __call__(self, spec: ArchSpec, **options: Any) -> ArchSpec:
        """Apply the step to `spec` with keyword `options` (the function's defaults otherwise)."""
        return self.fn(spec, **options)


ABLATION_STEPS: Registry[AblationStep] = Registry("ablation step")


def ablation_step(name: str, *, recipe: str | None = None) -> Callable[[Callable[..., ArchSpec]],
                                                                      Callable[..., ArchSpec]]:
    """Decorator registering an `ArchSpec -> ArchSpec` function as the ablation step `name`."""
    def add(fn: Callable[..., ArchSpec]) -> Callable[..., ArchSpec]:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        ABLATION_STEPS.register(name)(AblationStep(name, fn, recipe, doc))
        return fn
    return add


def _per_stage(name: str, values: Sequence[Any], spec: ArchSpec) -> tuple[Any, ...]:
    if len(values) != len(spec.stages):
        raise SpecError(name, f"must give one value per stage ({len(spec.stages)})", list(values))
    return tuple(values)


@ablation_step("modern_recipe", recipe="modern")
def modern_recipe(spec: ArchSpec, *, drop_path_rate: float = 0.1, layer_scale_init: float = 1e-6) -> ArchSpec:
    """Step 1: the modern training recipe; no parameter or MAC changes.

    Stochastic depth and layer scale are regularisers of the recipe (paper Table 5) that archlab keeps on
    the spec. Layer scale is set only where a block reads it: a bottleneck network keeps 0, so rows 1-6 equal
    the search space's points with no unread field, and `move_up_depthwise` sets it with the convnext block.
    """
    if not _reads_layer_scale(spec):
        layer_scale_init = spec.layer_scale_init
    return replace(spec, drop_path_rate=drop_path_rate, layer_scale_init=layer_scale_init)


def _reads_layer_scale(spec: ArchSpec) -> bool:
    """Whether any stage's block family reads ArchSpec.layer_scale_init."""
    return any(family(s.block).layer_scale for s in spec.stages)


@ablation_step("stage_ratio")
def stage_ratio(spec: ArchSpec, *, depths: Sequence[int] = (3, 3, 9, 3), width: int | None = None) -> ArchSpec:
    """Step 2: stage compute ratio (3, 4, 6, 3) -> (3, 3, 9, 3) (Swin-T's 1:1:3:1), optionally widening.

    `width` sets the stem and the first stage's inner (bottleneck) width: Table 11's ResNet-200 regime
    widens 64 -> 84 at this step to keep the compute of the deeper original.
    """
    depths = _per_stage("depths", depths, spec)
    spec = replace(spec, stages=tuple(replace(s, depth=int(d)) for s, d in zip(spec.stages, depths)))
    return spec if width is None else widen(spec, width=width)


@ablation_step("patchify_stem")
def patchify_stem(spec: ArchSpec, *, kernel_size: int = 4) -> ArchSpec:
    """Step 3: the 7x7/2 conv + max-pool stem -> a kxk stride-k "patchify" conv (with bias, no norm or act)."""
    stem = StemSpec(type="patchify", width=spec.stem.width, kernel_size=kernel_size, stride=kernel_size,
                    norm="none", act="none")
    return replace(spec, stem=stem)


@ablation_step("depthwise")
def depthwise(spec: ArchSpec) -> ArchSpec:
    """Step 4: ResNeXt-ify: the bottleneck's 3x3 conv becomes depthwise (group width 1)."""
    return spec.with_stages(group_width=1)


@ablation_step("widen")
def widen(spec: ArchSpec, *, width: int = 96) -> ArchSpec:
    """Step 5: widen so the first stage's inner width (and the stem) is `width`; later stages keep their ratios.

    The paper's 64 -> 96 is the bottleneck's inner width: stage outputs stay 4x it (384 ... 3072), which
    is the reading that gives Table 10's 5.27 GMACs.
    """
    first = spec.stages[0]
    inner = family(first.block).mid(first, first.width) if first.block == "bottleneck" else first.width
    factor = width / inner
    stages = tuple(replace(s, width=int(round(s.width * factor))) for s in spec.stages)
    stem = spec.stem if spec.stem.type == "identity" else replace(spec.stem, width=width)
    return replace(spec, stem=stem, stages=stages)


@ablation_step("inverted_bottleneck")
def inverted_bottleneck(spec: ArchSpec, *, expand_ratio: float = 4.0) -> ArchSpec:
    """Step 6: inverted bottleneck: the wide inner width becomes the stage output's `expand_ratio` times.

    Each stage's output becomes its old inner width (384 -> 96 ...), and the inner width `expand_ratio`
    times that; the stride stays in the (now wide) depthwise conv.
    """
    stages = tuple(replace(s, width=int(round(s.width * s.expand_ratio)) if s.block == "bottleneck" else s.width,
                           expand_ratio=expand_ratio) for s in spec.stages)
    return replace(spec, stages=stages)


@ablation_step("move_up_depthwise")
def move_up_depthwise(spec: ArchSpec, *, layer_scale_init: float = 1e-6) -> ArchSpec:
    """Step 7: move the depthwise conv to the front of the block (bottleneck -> convnext family).

    Norm and activation after every conv and after the sum, as the bottleneck had; the stride moves with
    the depthwise conv. The convnext block reads layer scale, so the modern recipe's 1e-6 (paper Table 5)
    takes effect here; a spec that already carries one keeps it.
    """
    spec = spec.with_stages(block="convnext", group_width=1, norms="all", acts="all")
    return replace(spec, layer_scale_init=spec.layer_scale_init or layer_scale_init)


@ablation_step("kernel_size")
def kernel_size(spec: ArchSpec, *, kernel_size: int = 7) -> ArchSpec:
    """Steps 8-11: the depthwise kernel 3 -> `kernel_size` (5, 7 adopted, 9, 11)."""
    return spec.with_stages(kernel_size=kernel_size)


@ablation_step("gelu")
def gelu(spec: ArchSpec) -> ArchSpec:
    """Step 12: ReLU -> GELU everywhere."""
    return spec.with_stages(act="gelu")


@ablation_step("fewer_activations")
def fewer_activations(spec: ArchSpec) -> ArchSpec:
    """Step 13: one activation per block, between the two 1x1 convs (as a transformer's MLP)."""
    return spec.with_stages(acts="one")


@ablation_step("fewer_norms")
def fewer_norms(spec: ArchSpec) -> ArchSpec:
    """Step 14: one norm per block, after the depthwise conv (before the 1x1 convs)."""
    return spec.with_stages(norms="one")


@ablation_step("layernorm")
def layernorm(spec: ArchSpec) -> ArchSpec:
    """Step 15: BatchNorm -> LayerNorm in every block (and shortcut projection); no conv or linear MACs change."""
    return spec.with_stages(norm="layernorm")


@ablation_step("grn")
def grn(spec: ArchSpec) -> ArchSpec:
    """ConvNeXt V2 (Woo et al. 2023): global response norm after the MLP activation, layer scale dropped.

    Every stage of the family that owns `grn` (convnext) gets it; from ConvNeXt-T this is timm's convnextv2_tiny.
    """
    owner = owner_of("grn")
    return replace(spec, stages=tuple(replace(s, grn=True) if s.block == owner else s for s in spec.stages),
                   layer_scale_init=0.0)


@ablation_step("separate_downsampling")
def separate_downsampling(spec: ArchSpec) -> ArchSpec:
    """Step 16: separate LN + 2x2/2 conv downsampling layers, with LN after the stem and after pooling.

    The paper stabilised separate downsampling with exactly these three LayerNorms.
    """
    stem = replace(spec.stem, norm="layernorm")
    return replace(spec.with_stages(downsample="layer"), stem=stem, head=replace(spec.head, norm="layernorm"))
