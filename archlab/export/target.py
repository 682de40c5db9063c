"""What `archlab export` is pointed at: a zoo name, a spec file, or a search trial `RUN_DIR:NUMBER`."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from archlab.arch.resolve import resolve_spec
from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, shorten

__all__ = ["resolve_target"]


def resolve_target(text: str, *, img_size: int | None = None) -> tuple[ArchSpec, Path | None]:
    """The spec named by `text` and the weights file that comes with it (a trial's), if any.

    A trial is `RUN_DIR:NUMBER`: the run folder's trials/NNNN/spec.yaml, with trials/NNNN/weights.safetensors
    where the search kept the trial's weights (docs/run_folder.md).
    """
    run, sep, number = text.rpartition(":")
    if sep and number.isdigit() and Path(run).is_dir():
        folder = Path(run) / "trials" / f"{int(number):04d}"
        spec_file = folder / "spec.yaml"
        if not spec_file.is_file():
            raise ArchlabError(f"{run}: has no trial {int(number)} ({spec_file} does not exist)")
        spec = resolve_spec(spec_file, img_size=img_size)
        if spec.name == "spec":  # resolve_spec names a spec file by its stem; a trial's is better named by number
            spec = replace(spec, name=f"trial{int(number):04d}")
        weights = folder / "weights.safetensors"
        return spec, weights if weights.is_file() else None
    if sep and number.isdigit() and not Path(text).exists():
        raise ArchlabError(f"{text}: {run} is not a run folder (expected RUN_DIR:NUMBER, a zoo name or a spec file)")
    if sep and run and Path(run).is_dir() and not Path(text).exists():   # else: the whole zoo as "did you mean"
        raise ArchlabError(f"{text}: the trial after the colon must be a whole number (RUN_DIR:NUMBER), "
                           f"got {shorten(repr(number), 60)}")
    return resolve_spec(text, img_size=img_size), None
