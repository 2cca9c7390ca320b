"""`python -m ingestor` runs the command-line interface."""

from ingestor.cli import main

raise SystemExit(main())
