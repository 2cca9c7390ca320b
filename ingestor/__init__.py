"""Defender XDR advanced-hunting stream ingestor: Event Hubs / Kafka -> Logs Ingestion API.

Rooms, top first: `cli` and `config_check` (the commands); `run` (the runtime of `ingestor run` and `replay`) and
`provision` (`ingestor provision`); `sources`, `pipeline` and `sinks` (the stages a row flows through, one way);
`connect` (credentials, Kafka connections, waiting for what is not reachable yet); and the shared leaves: `config`,
`retention` and `tables` (what the user configures and the tables' schemas), `models` and `commit` (what crosses
the stages, and the at-least-once bookkeeping), `metrics`, `errors`, `bounds` and `logs`. A module imports only
rooms below its own (`tests/test_layers.py`).
"""

__version__ = "0.1.0"
