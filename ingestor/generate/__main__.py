"""`python -m ingestor.generate ...` runs the generator command line (same options as `ingestor generate`)."""

import sys

from ingestor.generate.cli import run

raise SystemExit(run(sys.argv[1:]))
