"""archlab: neural architecture search and ablation for CNNs.

The data flows one way: YAML -> SearchSpace -> ArchSpec -> nn.Module -> measurements -> results -> report.
Importing `archlab` loads only the torch-free spec layer; the functions below that need torch, Ray or Optuna
import them when first used (the same lazy module `__getattr__` that Optuna and SciPy use).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archlab.arch.resolve import resolve_spec
from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, load_spec
from archlab.arch.zoo import get_spec, zoo_names
from archlab.core.errors import ArchlabError, SpecError

if TYPE_CHECKING:  # what the lazy names resolve to, for type checkers and editors
    from archlab.ablation import run_ablation
    from archlab.measure.latency import measure_latency
    from archlab.measure.train import train
    from archlab.nn.build import build_model
    from archlab.nn.complexity import complexity
    from archlab.search.engine import run_search
    from archlab.space.search_space import load_space

__all__ = ["ArchSpec", "ArchlabError", "HeadSpec", "SpecError", "StageSpec", "StemSpec", "build_model",
           "complexity", "get_spec", "load_space", "load_spec", "measure_latency", "resolve_spec", "run_ablation",
           "run_search", "train", "zoo_names"]
__version__ = "0.1.0"

# public name -> the module that defines it; imported on first access so `import archlab` stays torch-free
_LAZY = {
    "build_model": "archlab.nn.build",
    "complexity": "archlab.nn.complexity",
    "load_space": "archlab.space.search_space",
    "train": "archlab.measure.train",
    "measure_latency": "archlab.measure.latency",
    "run_search": "archlab.search.engine",
    "run_ablation": "archlab.ablation",
}


def __getattr__(name: str) -> Any:
    """Resolve a lazy public name (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
