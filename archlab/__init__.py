"""archlab: neural architecture search and ablation for CNNs.

The data flows one way: YAML -> SearchSpace -> ArchSpec -> nn.Module -> measurements -> results -> report.
Importing `archlab` loads only the torch-free spec layer; `archlab.build` brings in torch.
"""
from archlab.errors import ArchlabError, SpecError
from archlab.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, load_spec
from archlab.zoo import get_spec, zoo_names

__all__ = ["ArchSpec", "ArchlabError", "HeadSpec", "SpecError", "StageSpec", "StemSpec", "get_spec", "load_spec",
           "zoo_names"]
__version__ = "0.1.0"
