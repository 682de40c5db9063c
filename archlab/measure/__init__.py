"""Measurement of built networks: data, augmentation, training recipes, the proxy trainer and latency.

It turns an ArchSpec into measured numbers; it knows nothing about searches.
"""
