"""YAML search spaces: the language, its compiler, the define-by-run decoder and space descriptions.

A space produces ArchSpecs; importing it does not import torch (analytic costs load nn lazily).
"""
