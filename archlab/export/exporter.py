"""Export a network to ONNX, TorchScript or torch.export, each file checked against the PyTorch module.

The check follows timm's `onnx_export --check-forward`: the exported file is loaded back (ONNX Runtime,
`torch.jit.load`, `torch.export.load`), run on the same random input as the eval-mode module, and the maximum
absolute difference is reported; a difference beyond tolerance is an error and nothing is written.

Files are made in a staging folder inside the output folder and renamed into place only after the check, so an
interrupted or failed export leaves no half-written file behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, did_you_mean, memory_shortfall
from archlab.core.files import atomic_write_text
from archlab.export import FORMAT_NAMES
from archlab.nn.build import build_model
from archlab.nn.weights import LoadedWeights, save_weights

__all__ = ["FORMATS", "ONNX_OPSET", "ExportResult", "export_model", "parse_batch"]

ONNX_OPSET = 18        # ONNX Runtime >= 1.14 runs it; the dynamo exporter's well-trodden opset
_MAX_BATCH = 4096      # upper bound of the dynamic batch dimension (torch.export needs one to reason about sizes)
_REL_TOL = 1e-4        # max |difference| allowed, relative to the largest output magnitude


@dataclass(frozen=True)
class _Format:
    filename: str
    save: Callable[[nn.Module, torch.Tensor, bool, Path, list[str]], None]
    run: Callable[[Path, torch.Tensor], torch.Tensor]
    note: str


@dataclass
class ExportResult:
    """What an export wrote and how closely the exported file reproduces the module."""

    format: str
    out_dir: str
    files: list[str]
    max_abs_diff: float
    max_abs_output: float
    check_batch: int
    input_shape: list[int | str]
    seconds: float
    weights: str
    notes: list[str] = field(default_factory=list)
    opset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def parse_batch(text: str | int) -> int | None:
    """`dynamic` -> None, a positive integer -> that batch size (the CLI's --batch)."""
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= _MAX_BATCH:   # the check runs one batch: 10^8 images was an allocation traceback
        raise ArchlabError(f"--batch must be 'dynamic' or a whole number in [1, {_MAX_BATCH}], got {text!r}")
    return value


# --- formats -----------------------------------------------------------------------------------------------

def _dynamic(dynamic: bool) -> Any:
    return ({0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)},) if dynamic else None


def _save_onnx(model: nn.Module, x: torch.Tensor, dynamic: bool, path: Path, notes: list[str]) -> None:
    # the exporter prints progress on stdout; keep stdout for the command's own (JSON) output
    with contextlib.redirect_stdout(sys.stderr):
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=_dynamic(dynamic),
                                    opset_version=ONNX_OPSET, input_names=["input"], output_names=["logits"],
                                    verbose=False)
        program.save(str(path))


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _save_torchscript(model: nn.Module, x: torch.Tensor, dynamic: bool, path: Path, notes: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream but still deployable
        try:
            scripted = torch.jit.script(model)
        except Exception as err:  # the scripting compiler raises many types; trace is the documented fallback
            message = f"torch.jit.script failed ({type(err).__name__}: {str(err).strip().splitlines()[0][:160]}); " \
                      "traced instead: control flow is frozen to the example input's path"
            warnings.warn(message, stacklevel=2)
            notes.append(message)
            scripted = torch.jit.trace(model, (x,))
        torch.jit.save(scripted, str(path))


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(x)


def _save_exported(model: nn.Module, x: torch.Tensor, dynamic: bool, path: Path, notes: list[str]) -> None:
    program = torch.export.export(model, (x,), dynamic_shapes=_dynamic(dynamic))
    torch.export.save(program, str(path))


def _run_exported(path: Path, x: torch.Tensor) -> torch.Tensor:
    return torch.export.load(str(path)).module()(x)


FORMATS: dict[str, _Format] = {
    "onnx": _Format("model.onnx", _save_onnx, _run_onnx, f"ONNX opset {ONNX_OPSET}, torch.onnx.export(dynamo=True)"),
    "torchscript": _Format("model.ts", _save_torchscript, _run_torchscript, "TorchScript, torch.jit.script"),
    "exported": _Format("model.pt2", _save_exported, _run_exported, "torch.export ExportedProgram"),
}

assert tuple(FORMATS) == FORMAT_NAMES  # the CLI offers FORMAT_NAMES without importing this module


# --- the export --------------------------------------------------------------------------------------------

def _reference(spec: ArchSpec, weights: LoadedWeights | None, shape: tuple[int, ...],
               seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The eval-mode module, a seeded check input of `shape` and the module's output on it (what an export must
    reproduce); a network that does not fit in memory at that input is one message."""
    try:
        torch.manual_seed(seed)
        model = build_model(spec).eval()
        if weights is not None:
            weights.load_into(model)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return model, x, model(x)
    except (RuntimeError, MemoryError) as err:   # torch's allocator says so in a RuntimeError
        why = memory_shortfall(err)
        if why is None:
            raise
        raise ArchlabError(f"{spec.name or spec.arch_id} on a {'x'.join(map(str, shape))} input does not fit in "
                           f"memory here (out of memory: {why}); use a smaller --img-size or --batch") from None


def export_model(spec: ArchSpec, fmt: str, out_dir: str | Path, *, weights: LoadedWeights | None = None,
                 batch: int | None = None, seed: int = 0) -> ExportResult:
    """Export the network of `spec` (with `weights`, else its seeded initialisation) as `fmt` into `out_dir`.

    `batch` None exports a dynamic batch dimension; an integer fixes it. `out_dir` gets spec.yaml,
    weights.safetensors, export.json and the model file.
    """
    if fmt not in FORMATS:
        raise ArchlabError(f"unknown export format {fmt!r}: must be one of {', '.join(FORMATS)}"
                           + did_you_mean(fmt, list(FORMATS), list_valid=False))
    out = _prepare_out_dir(out_dir)
    form = FORMATS[fmt]
    check_batch = batch or 2  # a dynamic export is checked at a batch other than 1, so the dimension is exercised
    model, x, expected = _reference(spec, weights, (check_batch, spec.in_chans, spec.img_size, spec.img_size), seed)
    stage = Path(out) / f".export-{os.getpid()}"
    stage.mkdir()
    start = time.perf_counter()
    notes: list[str] = []
    try:
        try:
            form.save(model, x, batch is None, stage / form.filename, notes)
            with torch.no_grad():
                got = form.run(stage / form.filename, x)
        except ArchlabError:
            raise
        except Exception as err:  # exporters raise their own error types; say which network and format failed
            raise ArchlabError(f"{spec.name or spec.arch_id} cannot be exported as {fmt}: {type(err).__name__}: "
                               f"{str(err).strip().splitlines()[0][:300] if str(err).strip() else 'no detail'}"
                               ) from None
        diff = float((got.float() - expected).abs().max())
        scale = float(expected.abs().max())
        if not diff <= _REL_TOL * max(1.0, scale):
            raise ArchlabError(f"the {fmt} export of {spec.name or spec.arch_id} differs from the PyTorch module by "
                               f"{diff:.3g} (largest output {scale:.3g}); nothing was written")
        save_weights(model, stage / "weights.safetensors",
                     metadata={"arch_id": spec.arch_id, "source": weights.source if weights else "init"})
        atomic_write_text(stage / "spec.yaml", spec.to_yaml())
        result = ExportResult(
            format=fmt, out_dir=str(out), files=[], max_abs_diff=diff, max_abs_output=scale,
            check_batch=check_batch, input_shape=["batch" if batch is None else batch, spec.in_chans, spec.img_size,
                                                  spec.img_size],
            seconds=round(time.perf_counter() - start, 3),
            weights=weights.path if weights else f"initialisation (seed {seed}): no trained weights given",
            notes=[form.note, *notes], opset=ONNX_OPSET if fmt == "onnx" else None)
        atomic_write_text(stage / "export.json", json.dumps({**result.to_dict(), "versions": _versions()}, indent=2))
        result.files = _publish(stage, Path(out))
        return result
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _prepare_out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArchlabError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ArchlabError(f"--out {out}: cannot be created ({err.strerror})") from None
    return out


def _publish(stage: Path, out: Path) -> list[str]:
    """Rename every staged file into `out` (each rename atomic); the model file last, so it implies the rest."""
    names = sorted(p.name for p in stage.iterdir())
    names.sort(key=lambda n: n.startswith("model."))
    for name in names:
        os.replace(stage / name, out / name)
    return [str(out / n) for n in names]


def _versions() -> dict[str, str]:
    import importlib.metadata
    out = {"torch": torch.__version__}
    for package in ("archlab", "onnx", "onnxruntime", "onnxscript"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out
