"""Development tools of defender-ingestor, shipped apart from the runtime: `emulator` (an HTTPS Logs Ingestion API
with fault knobs), `generate` (seeded synthetic Defender traffic) and `samples/` (one captured record per table).
"""

from pathlib import Path

# One captured record per table (a JSON list of one Streaming API record each), named <Table>.json.
SAMPLES_DIR = Path(__file__).parent / "samples"
