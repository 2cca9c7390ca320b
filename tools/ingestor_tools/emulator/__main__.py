"""`python -m ingestor_tools.emulator ...` runs the emulator command line (see `ingestor_tools.emulator.cli`)."""

import sys

from ingestor_tools.emulator.cli import run

raise SystemExit(run(sys.argv[1:]))
