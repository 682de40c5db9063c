"""Every zoo network registered with timm as `archlab_<zoo name>` (importing this module registers them).

    import archlab.timm  # noqa: F401
    backbone = timm.create_model("archlab_convnext_tiny", features_only=True, out_indices=(1, 2, 3))
    timm.list_models("archlab_*")

Registration goes through timm's public `register_model` and models are made by `build_model_with_cfg`, so
timm's own machinery applies: `features_only` (through the network's `forward_intermediates`), `num_classes`,
`in_chans`, `drop_rate`, `drop_path_rate`, `img_size`, and `pretrained=True` with
`pretrained_cfg_overlay=dict(file=PATH)` for a local archlab, torchvision or timm checkpoint (nothing is
downloaded: archlab's zoo carries no weights of its own). `import archlab` does not import this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from timm.models import build_model_with_cfg, register_model

from archlab.arch.spec import ArchSpec
from archlab.arch.zoo import get_spec, zoo_names
from archlab.core.errors import ArchlabError
from archlab.nn.build import ArchNet, build_model
from archlab.nn.features import default_pretrained_cfg, feature_levels

__all__ = ["PREFIX", "create", "registered_names"]

PREFIX = "archlab_"
# timm keyword -> ArchSpec field it sets (drop_rate is the head's dropout)
_SPEC_KWARGS = {"num_classes": "num_classes", "in_chans": "in_chans", "img_size": "img_size",
                "drop_path_rate": "drop_path_rate"}


def _spec_for(name: str, kwargs: dict[str, Any]) -> ArchSpec:
    """The zoo spec with timm's keyword arguments applied; an unknown keyword is an error, not ignored."""
    changes = {field: kwargs.pop(key) for key, field in _SPEC_KWARGS.items() if key in kwargs}
    spec = get_spec(name, **changes)
    if "drop_rate" in kwargs:
        spec = spec.replace(head=replace(spec.head, dropout=float(kwargs.pop("drop_rate"))))
    if kwargs.get("global_pool") in (None, spec.head.pool):  # the spec fixes the pool; its own name is accepted
        kwargs.pop("global_pool", None)
    if kwargs:
        raise ArchlabError(f"{PREFIX}{name}: unsupported keyword argument(s) {', '.join(sorted(kwargs))}; "
                           f"supported: {', '.join(sorted([*_SPEC_KWARGS, 'drop_rate']))}")
    return spec


def _filter_weights(state_dict: dict[str, Any], model: ArchNet) -> dict[str, Any]:
    """timm's pretrained filter: a torchvision or timm layout mapped onto the network (archlab's passes through)."""
    from archlab.nn.weights import SOURCES, WeightsMismatch, check_fits, convert, counterpart_name, entries_of
    mine = entries_of(model)
    try:
        check_fits(state_dict, mine, what=model.spec.name)
        return state_dict
    except WeightsMismatch as err:
        first = err
    for source in SOURCES:
        if counterpart_name(model.spec.name, source):
            try:
                return convert(source, model.spec.name, state_dict)
            except WeightsMismatch:
                continue
    raise first


def create(name: str, pretrained: bool = False, **kwargs: Any) -> ArchNet:
    """Make zoo network `name` the way timm makes its models (features_only, out_indices, pretrained file...)."""
    user_cfg = kwargs.pop("pretrained_cfg", None)
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    feature_cfg = {"feature_cls": "getter"}  # our forward_intermediates is the feature path (timm's newer models)
    if kwargs.get("features_only") and "out_indices" not in kwargs:
        levels = feature_levels(_spec_for(name, {k: v for k, v in kwargs.items() if k in _SPEC_KWARGS}))
        feature_cfg["out_indices"] = tuple(range(len(levels)))  # timm's default (0..4) assumes five levels
    base_cfg = default_pretrained_cfg(_spec_for(name, {k: v for k, v in kwargs.items() if k in _SPEC_KWARGS}))
    return build_model_with_cfg(
        lambda **kw: build_model(_spec_for(name, kw)), f"{PREFIX}{name}", pretrained,
        pretrained_cfg=user_cfg or base_cfg, pretrained_cfg_overlay=overlay, feature_cfg=feature_cfg,
        pretrained_filter_fn=_filter_weights, **kwargs)


def _entrypoint(name: str) -> Callable[..., ArchNet]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> ArchNet:
        return create(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = f"{PREFIX}{name}"
    entrypoint.__module__ = __name__  # timm files the model under this module's name
    entrypoint.__doc__ = f"archlab's {name} (zoo spec), built by archlab.nn.build."
    return entrypoint


def registered_names() -> list[str]:
    """The timm names this module registered."""
    return [f"{PREFIX}{n}" for n in zoo_names()]


for _name in zoo_names():
    globals()[f"{PREFIX}{_name}"] = register_model(_entrypoint(_name))
