"""The torch-free architecture language: ArchSpec, the zoo, compound scaling and pure spec transforms.

Everything here is plain data; it never imports torch (tests/test_layering.py checks).
"""
