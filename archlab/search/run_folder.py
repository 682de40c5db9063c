"""A search's run folder (docs/run_folder.md): the study and space as run, the Optuna storage, trial files,
tables and bookkeeping; every file written atomically so a kill -9 never leaves half of one.
"""
from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError
from archlab.core.files import atomic_write_text
from archlab.search.study import Study

__all__ = ["RunFolder", "software_versions"]


@dataclass(frozen=True)
class RunFolder:
    """A run's folder: the study and space as run, the Optuna storage, trial specs, tables and logs."""

    path: Path

    @property
    def study_file(self) -> Path:
        """The study as run (its `space:` points at the copied space)."""
        return self.path / "study.yaml"

    @property
    def space_file(self) -> Path:
        """The copy of the search space the run searches."""
        return self.path / "space.yaml"

    @property
    def state_file(self) -> Path:
        """Bookkeeping: storage, target, elapsed time, sessions, Ray clusters."""
        return self.path / "state.json"

    @property
    def storage_url(self) -> str:
        """Default Optuna storage: SQLite inside the run folder (optuna-dashboard opens it)."""
        return f"sqlite:///{(self.path / 'optuna.db').resolve()}"

    def trial_dir(self, number: int) -> Path:
        """Folder of one trial's files (spec, log)."""
        return self.path / "trials" / f"{number:04d}"

    def create(self, study: Study) -> None:
        """Lay out a new run: copy the study and its space, pointing the copy at the copied space."""
        if self.path.exists() and any(self.path.iterdir()):
            raise ArchlabError(f"{self.path} already holds a run; pass --resume to continue it or another --out")
        (self.path / "trials").mkdir(parents=True, exist_ok=True)
        (self.path / "logs").mkdir(exist_ok=True)
        shutil.copyfile(study.space, self.space_file)
        atomic_write_text(self.study_file, study.to_yaml(space="space.yaml"))

    def read_state(self) -> dict[str, Any]:
        """The run's bookkeeping (elapsed time, target trials, settings of each session)."""
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Atomically replace the bookkeeping file."""
        atomic_write_text(self.state_file, json.dumps(state, indent=2, default=str))

    def write_json(self, name: str, data: Any) -> Path:
        """Atomically write `data` as JSON to a file of the run folder."""
        return atomic_write_text(self.path / name, json.dumps(data, indent=2, default=str))


def software_versions() -> dict[str, str]:
    """Versions of the stack a run used (for the run folder and the report)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for name in ("archlab", "torch", "torchvision", "timm", "optuna", "ray", "pandas", "plotly"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
