"""Public weights API: torchvision/timm state dicts in and out of archlab networks, checkpoint files.

A façade over `archlab.nn.weights` (importing it loads torch):

    from archlab.weights import from_torchvision
    model.load_state_dict(from_torchvision("resnet50", torchvision_state_dict), strict=True)
"""
from __future__ import annotations

from archlab.nn.weights import (
    SOURCES,
    LoadedWeights,
    WeightsMismatch,
    counterpart_name,
    counterpart_spec,
    counterparts,
    fit_to,
    from_timm,
    from_torchvision,
    guess_network,
    key_map,
    load_checkpoint,
    load_weights,
    randomize_,
    reference_model,
    save_weights,
    to_timm,
    to_torchvision,
)

__all__ = [
    "SOURCES", "LoadedWeights", "WeightsMismatch", "counterpart_name", "counterpart_spec", "counterparts", "fit_to",
    "from_timm", "from_torchvision", "guess_network", "key_map", "load_checkpoint", "load_weights", "randomize_",
    "reference_model", "save_weights", "to_timm", "to_torchvision",
]
