"""`python -m ingestor.emulator ...` runs the emulator command line (see `ingestor.emulator.cli`)."""

import sys

from ingestor.emulator.cli import run

raise SystemExit(run(sys.argv[1:]))
