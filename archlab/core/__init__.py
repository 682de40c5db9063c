"""Shared plumbing every stage may use: errors, registries, YAML/JSON reading and file writing.

Nothing here knows about networks, searches or torch.
"""
