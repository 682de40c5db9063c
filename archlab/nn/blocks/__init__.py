"""The block families, registered by name: one module per family, each with its analytic cost beside it.

Every block has the constructor `(in_chs, out_chs, stride, stage, *, drop_path, layer_scale_init)` and a
static `cost(c, in_chs, out_chs, stride, stage, *, layer_scale_init)`, so stages and networks only loop.
A family's torch-free half (fields it reads, inner width, rules, display name) is its row in
`archlab.arch.families`; docs/search_spaces.md, "Adding a block family", lists the steps.
"""
from __future__ import annotations

from archlab.arch.families import FAMILIES
from archlab.arch.spec import BLOCKS
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Block, block_class, se_channels
from archlab.nn.blocks.convnext import ConvNeXtBlock
from archlab.nn.blocks.inception import InceptionBlock
from archlab.nn.blocks.inverted_residual import InvertedResidual
from archlab.nn.blocks.plain import PlainBlock
from archlab.nn.blocks.resnet import BasicBlock, BottleneckBlock
from archlab.nn.blocks.shuffle import ShuffleUnit, channel_shuffle

__all__ = ["BLOCKS_REGISTRY", "BasicBlock", "Block", "BottleneckBlock", "ConvNeXtBlock", "InceptionBlock",
           "InvertedResidual", "PlainBlock", "ShuffleUnit", "block_class", "channel_shuffle", "se_channels"]

# every name the spec accepts has a module here and a torch-free row in archlab.arch.families
assert set(BLOCKS_REGISTRY) == set(BLOCKS) == set(FAMILIES), (sorted(BLOCKS_REGISTRY), BLOCKS, sorted(FAMILIES))
