"""Shared test fixtures: few threads (the machine has 2 cores shared by every test)."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
# reports that searches and ablations under test write by default go to a temp dir, not the repo's reports/
os.environ.setdefault("ARCHLAB_REPORTS_DIR", tempfile.mkdtemp(prefix="archlab-reports-"))


def pytest_configure(config):
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # the torch-free spec tests still run
        pass
