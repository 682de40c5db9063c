"""The `archlab` command line: parses arguments, calls one library function per command.

Each area registers its commands from `archlab.cli.<area>`; a user error (ArchlabError) becomes a
one-paragraph message on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from archlab.core.errors import ArchlabError

__all__ = ["main"]

# Modules under archlab.cli that define `register(subparsers)`; order is the help order.
COMMAND_MODULES = ("core", "space", "measure", "proxies", "predictor", "search", "ablate", "report", "export")


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on exit code 2 (argparse's own) and no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every area's subcommands."""
    parser = _Parser(prog="archlab", description="Neural architecture search and ablation for CNNs.")
    parser.add_argument("--version", action="version", version=f"archlab {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"archlab.cli.{name}").register(sub)
    return parser


def _version() -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version("archlab")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from archlab import __version__
        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ArchlabError as err:
        print(f"archlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
