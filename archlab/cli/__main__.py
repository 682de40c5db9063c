"""`python -m archlab.cli`: the same entry point as the `archlab` script."""
import sys

from archlab.cli.main import main

sys.exit(main())
