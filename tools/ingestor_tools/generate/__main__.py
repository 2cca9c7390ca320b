"""`python -m ingestor_tools.generate ...` runs the generator command line (same options as `ingestor generate`)."""

import sys

from ingestor_tools.generate.cli import run

raise SystemExit(run(sys.argv[1:]))
