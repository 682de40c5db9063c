"""Ablation ladders: read a ladder file, resolve its rows into specs, measure them, compare with the paper.

The pure step transforms live in archlab.arch.steps; this package runs and summarises them.
"""
