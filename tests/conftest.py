"""Shared test fixtures: few threads (the machine has 2 cores shared by every test)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_configure(config):  # noqa: D103
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # the torch-free spec tests still run
        pass
