"""HTTPS emulator of the Azure Monitor Logs Ingestion API for tests, the demo and benchmarks.

`Emulator` runs it in-process; `run(argv)` is the `ingestor emulator` command line.
"""

from ingestor_tools.emulator.cli import TOKEN_ENV, run
from ingestor_tools.emulator.dcr import DEFAULT_RULE_ID, DcrDefinition, default_dcr
from ingestor_tools.emulator.faults import Faults
from ingestor_tools.emulator.payload import MAX_BODY_BYTES, RESERVED_COLUMNS
from ingestor_tools.emulator.server import Emulator

__all__ = [
    "DEFAULT_RULE_ID",
    "MAX_BODY_BYTES",
    "RESERVED_COLUMNS",
    "TOKEN_ENV",
    "DcrDefinition",
    "Emulator",
    "Faults",
    "default_dcr",
    "run",
]
