"""The layout is the architecture: stages import only earlier stages, and the spec and space layers stay torch-free."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml: the stage order and the torch-free architecture language."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_contracts_catch_a_backward_import(tmp_path: Path) -> None:
    """The layer contract is not vacuous: a copy of the package where `arch` imports `search` breaks it."""
    import shutil
    pkg = tmp_path / "archlab"
    shutil.copytree(ROOT / "archlab", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "arch" / "backward.py").write_text("from archlab.search import results\n")
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert out.returncode != 0
    assert "archlab.arch.backward -> archlab.search.results" in out.stdout


def test_spec_and_space_layers_import_without_torch() -> None:
    """Importing `archlab` and the arch/space/core stages, and resolving zoo specs, never loads torch.

    (Checking a space's params/MACs constraints does: the analytic cost lives beside each block family in
    archlab.nn, which the space stage imports lazily, only when a constraint needs it.)
    """
    code = ("import sys, archlab, archlab.arch.spec, archlab.arch.zoo, archlab.arch.scaling, archlab.arch.steps, "
            "archlab.arch.resolve, archlab.space.search_space, archlab.space.describe, archlab.core.yamlio\n"
            "from archlab.arch.resolve import resolve_spec\n"
            "resolve_spec('convnext_tiny', img_size=64).arch_id\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'ray', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
