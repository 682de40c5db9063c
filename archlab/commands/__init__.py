"""CLI command groups; each module defines `register(subparsers)` and thin `_run_*` functions."""
