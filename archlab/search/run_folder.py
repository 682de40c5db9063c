"""A search's run folder (docs/run_folder.md): the study and space as run, the Optuna storage, trial files,
kept weights, tables and bookkeeping; every file written atomically so a kill -9 never leaves half of one.
"""
from __future__ import annotations

import json
import math
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archlab.core.errors import ArchlabError, SpecError
from archlab.core.files import atomic_write, atomic_write_text
from archlab.core.yamlio import read_text_file
from archlab.search.study import Study
from archlab.search.trial import WEIGHTS_FILE

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
    def predictor_file(self) -> Path:
        """The copy of the study's latency predictor (latency: {predictor: FILE}), when it has one."""
        return self.path / "latency_predictor.json"

    @property
    def state_file(self) -> Path:
        """Bookkeeping: storage, target, elapsed time, sessions, Ray clusters."""
        return self.path / "state.json"

    @property
    def storage_url(self) -> str:
        """Default Optuna storage: SQLite inside the run folder (optuna-dashboard opens it)."""
        return f"sqlite:///{(self.path / 'optuna.db').resolve()}"

    @property
    def ray_dir(self) -> Path:
        """Ray Tune's storage path (RunConfig.storage_path): its experiment folder and the trials' checkpoints."""
        return self.path / "ray"

    def trial_dir(self, number: int) -> Path:
        """Folder of one trial's files (spec, kept weights)."""
        return self.path / "trials" / f"{number:04d}"

    def weights_file(self, number: int) -> Path:
        """Where a trial's weights are kept (trials/NNNN/weights.safetensors)."""
        return self.trial_dir(number) / WEIGHTS_FILE

    def checkpoint_ref(self, path: str) -> str:
        """How a trial's checkpoint folder is recorded: relative to the run folder when inside it (the folder
        can then move), else as given."""
        try:
            return Path(path).resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            return path

    def sync_weights(self, keep: set[int], checkpoints: dict[int, tuple[str, str]], *, sweep: bool = False,
                     ) -> set[int]:
        """Keep the weights of the trials in `keep`, drop the rest; the trials that now have a weights file.

        `checkpoints` maps a finished trial's number to (its recorded checkpoint folder, its arch_id). A kept
        trial's weights are copied atomically from its checkpoint folder; a weights file of a trial no longer
        kept is removed; then the checkpoint folder goes (its weights are kept here or not at all). A trial off
        the front stays off it (trials are only ever added), so what is removed is never wanted back.

        `sweep` (once Ray has stopped) also deletes checkpoint folders no trial recorded: a worker persists its
        checkpoint before the driver records it, so a kill in between leaves one behind, of a trial that is
        then interrupted and re-run.
        """
        suspect = set()
        for number, (ref, arch_id) in checkpoints.items():
            folder = self._checkpoint_folder(ref)
            if folder is None:
                continue
            source = folder / WEIGHTS_FILE
            if number in keep and not self.weights_file(number).exists():
                if not (source.is_file() and self._is_checkpoint_of(source, number, arch_id)):
                    suspect.add(folder.resolve())  # not this trial's weights (an internal error): left for a look
                    continue
                atomic_write(self.weights_file(number), lambda tmp, src=source: shutil.copyfile(src, tmp))
            shutil.rmtree(folder, ignore_errors=True)
        if sweep and self.ray_dir.is_dir():
            for folder in [p for p in self.ray_dir.rglob("checkpoint_*") if p.is_dir()]:
                if folder.resolve() not in suspect:
                    shutil.rmtree(folder, ignore_errors=True)
        have = set()
        for file in sorted((self.path / "trials").glob(f"*/{WEIGHTS_FILE}")):
            number = int(file.parent.name) if file.parent.name.isdigit() else None
            if number is None:
                continue
            if number in keep:
                have.add(number)
            else:
                file.unlink(missing_ok=True)
        return have

    def _checkpoint_folder(self, ref: str) -> Path | None:
        """The checkpoint folder a record names, if it exists and lies in this run's Ray storage (nothing outside
        it is ever deleted)."""
        folder = Path(ref) if Path(ref).is_absolute() else self.path / ref
        try:
            folder.resolve().relative_to(self.ray_dir.resolve())
        except ValueError:
            return None
        return folder if folder.is_dir() else None

    @staticmethod
    def _is_checkpoint_of(source: Path, number: int, arch_id: str) -> bool:
        """Whether a checkpoint is this trial's (the trial wrote its number and arch_id into the file's metadata)."""
        from archlab.nn.weights import metadata_of  # torch-free callers of the run folder need not import it
        try:
            meta = metadata_of(source)
        except Exception:  # safetensors raises its own (unexported) error on a truncated or corrupt file
            return False
        return meta.get("number") == str(number) and meta.get("arch_id") == arch_id

    def create(self, study: Study) -> None:
        """Lay out a new run: copy the study, its space and its latency predictor, the copy pointing at the copies."""
        if self.path.exists() and any(self.path.iterdir()):
            raise ArchlabError(f"{self.path} already holds a run; pass --resume to continue it or another --out")
        (self.path / "trials").mkdir(parents=True, exist_ok=True)
        (self.path / "logs").mkdir(exist_ok=True)
        shutil.copyfile(study.space, self.space_file)
        data = {**study.to_dict(), "space": self.space_file.name}
        if study.latency.predictor:  # what the trials predict with travels with the run: it resumes and reports alone
            shutil.copyfile(study.latency.predictor, self.predictor_file)
            # the trials predict, so the measuring keys are moot; written out (as their defaults) they would read
            # on --resume as settings the predictor contradicts (archlab.search.study checks the keys a study names)
            data["latency"] = {"predictor": self.predictor_file.name}
        atomic_write_text(self.study_file, yaml.safe_dump(data, sort_keys=False))

    def read_state(self) -> dict[str, Any]:
        """The run's bookkeeping (elapsed time, target trials, settings of each session); a damaged file is an
        ArchlabError naming it, the key and the value (a resume read it with a traceback)."""
        if not self.state_file.exists():
            return {}
        file = str(self.state_file)
        text = read_text_file(self.state_file)   # the file boundary: a regular UTF-8 file within the size cap
        try:
            state = json.loads(text)   # not load_json_text: a predictor's figures may be NaN, which json writes
        except json.JSONDecodeError as err:
            raise SpecError("", f"is not valid JSON: {err.msg}", show_value=False, file=file, line=err.lineno) from None
        except (RecursionError, ValueError):
            raise SpecError("", "is not valid JSON (nested too deep, or a number too long)", show_value=False,
                            file=file) from None
        if not isinstance(state, dict):
            raise SpecError("", "must hold a JSON object (the run's bookkeeping)", type(state).__name__, file=file)
        for key, kinds, rule in _STATE_FIELDS:
            value = state.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)
                                      or (isinstance(value, float) and not math.isfinite(value))):
                raise SpecError(key, rule, value, file=file)
        if float(state.get("elapsed_s") or 0) < 0:
            raise SpecError("elapsed_s", "must be >= 0 (seconds)", state["elapsed_s"], file=file)
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        """Atomically replace the bookkeeping file."""
        atomic_write_text(self.state_file, json.dumps(state, indent=2, default=str))

    def write_json(self, name: str, data: Any) -> Path:
        """Atomically write `data` as JSON to a file of the run folder."""
        return atomic_write_text(self.path / name, json.dumps(data, indent=2, default=str))


# the bookkeeping a resume computes with: (key, types, rule)
_STATE_FIELDS = (("elapsed_s", (int, float), "must be a finite number of seconds"),
                 ("storage", str, "must be an Optuna storage URL (a string)"),
                 ("target_trials", int, "must be a whole number of trials"),
                 ("timeout", (int, float), "must be a finite number of seconds"),
                 ("sessions", list, "must be a list of sessions"))


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
