"""The `archlab` command line: one module per command area, each a thin layer over one library call.

A user error (ArchlabError) becomes one message on stderr and exit code 2.
"""

from archlab.cli.main import main

__all__ = ["main"]
